using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Identity.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore;

namespace WebDefense.Server.Data;

/// <summary>
/// The application database. One subclass per provider (<see cref="SqliteAppDbContext"/>,
/// <see cref="PostgresAppDbContext"/>), each with its own migrations (docs/decisions/0004).
/// </summary>
public abstract class AppDbContext(DbContextOptions options)
    : IdentityDbContext<User, IdentityRole<Guid>, Guid>(options)
{
    public DbSet<Team> Teams => Set<Team>();
    public DbSet<ApiKey> ApiKeys => Set<ApiKey>();
    public DbSet<ModelRecord> Models => Set<ModelRecord>();
    public DbSet<DatasetRecord> Datasets => Set<DatasetRecord>();
    public DbSet<RunRecord> Runs => Set<RunRecord>();
    public DbSet<TrajectoryPointRecord> TrajectoryPoints => Set<TrajectoryPointRecord>();
    public DbSet<RunLogRecord> RunLogs => Set<RunLogRecord>();
    public DbSet<RunArtifactRecord> RunArtifacts => Set<RunArtifactRecord>();

    protected override void OnModelCreating(ModelBuilder builder)
    {
        base.OnModelCreating(builder);
        builder.Entity<Team>().HasIndex(t => t.Name).IsUnique();
        builder.Entity<User>().HasOne(u => u.Team).WithMany().HasForeignKey(u => u.TeamId).OnDelete(DeleteBehavior.Restrict);
        builder.Entity<ApiKey>().HasIndex(k => k.Hash).IsUnique();
        builder.Entity<ApiKey>().HasOne(k => k.User).WithMany().HasForeignKey(k => k.UserId).OnDelete(DeleteBehavior.Cascade);
        builder.Entity<ModelRecord>().HasIndex(m => m.TeamId);
        builder.Entity<DatasetRecord>().HasIndex(d => d.TeamId);
        // Recording a run's outcome checks that it is still the same attempt, still Running (RunJob.FinishAsync).
        builder.Entity<RunRecord>().Property(r => r.Status).HasConversion<string>().IsConcurrencyToken();
        builder.Entity<RunRecord>().Property(r => r.Attempt).IsConcurrencyToken();
        builder.Entity<RunRecord>().HasIndex(r => new { r.TeamId, r.CreatedAt });
        builder.Entity<RunRecord>().HasIndex(r => r.Status);
        builder.Entity<RunRecord>().HasIndex(r => r.BatchId);
        builder.Entity<TrajectoryPointRecord>().HasIndex(p => new { p.RunId, p.Attempt, p.Index });
        builder.Entity<RunLogRecord>().HasIndex(l => l.RunId);
        builder.Entity<RunArtifactRecord>().HasIndex(a => new { a.RunId, a.Kind });
    }
}

/// <summary>One machine: a SQLite file in the data directory. Migrations in Data/Migrations/Sqlite.</summary>
public sealed class SqliteAppDbContext(DbContextOptions<SqliteAppDbContext> options) : AppDbContext(options)
{
    protected override void OnModelCreating(ModelBuilder builder)
    {
        base.OnModelCreating(builder);
        // SQLite cannot order by DateTimeOffset; store them as UTC ticks.
        foreach (var entity in builder.Model.GetEntityTypes())
        {
            foreach (var property in entity.GetProperties().Where(p => p.ClrType == typeof(DateTimeOffset) || p.ClrType == typeof(DateTimeOffset?)))
            {
                property.SetValueConverter(new Microsoft.EntityFrameworkCore.Storage.ValueConversion.DateTimeOffsetToBinaryConverter());
            }
        }
    }
}

/// <summary>Several hosts: PostgreSQL (timestamps as timestamptz). Migrations in Data/Migrations/Postgres.</summary>
public sealed class PostgresAppDbContext(DbContextOptions<PostgresAppDbContext> options) : AppDbContext(options);
