using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using WebDefense.Server.Hosting;

namespace WebDefense.Server.Data;

public static class DataServices
{
    /// <summary><c>ConnectionStrings:WebDefense</c>: the PostgreSQL database (application tables; the job queue in schema hangfire).</summary>
    public const string ConnectionStringName = "WebDefense";

    /// <summary>
    /// The application database (SQLite file or PostgreSQL, by <c>WebDefense:Storage</c>), the artifact store, and the
    /// start-up tasks (migrations first, so they run before the job server starts).
    /// </summary>
    public static WebApplicationBuilder AddDataServices(this WebApplicationBuilder builder)
    {
        builder.Services.AddDbContext<SqliteAppDbContext>((sp, db) =>
        {
            var options = sp.GetRequiredService<IOptions<WebDefenseOptions>>().Value;
            Directory.CreateDirectory(options.DataPath);
            db.UseSqlite($"Data Source={Path.Combine(options.DataPath, "webdefense.db")};Default Timeout=30")
                // A table rebuild turns foreign keys off and on around its transaction (SQLite cannot do that inside one).
                // The setting belongs to the connection, not to the file, so the PRAGMA itself leaves nothing behind. What
                // the warning guards against, a crash in the middle of an upgrade, holds for every upgrade: back up the
                // data directory first (docs/deployment.md). Logged on every first start, it only alarmed new users.
                .ConfigureWarnings(w => w.Ignore(Microsoft.EntityFrameworkCore.Diagnostics.RelationalEventId.NonTransactionalMigrationOperationWarning));
        });
        builder.Services.AddDbContext<PostgresAppDbContext>((sp, db) => db.UseNpgsql(ConnectionString(sp.GetRequiredService<IConfiguration>())));
        builder.Services.AddScoped<AppDbContext>(sp => sp.GetRequiredService<IOptions<WebDefenseOptions>>().Value.Storage == StorageKind.Postgres
            ? sp.GetRequiredService<PostgresAppDbContext>()
            : sp.GetRequiredService<SqliteAppDbContext>());
        builder.Services.AddSingleton<ArtifactStore>();
        builder.Services.AddHostedService<StartupTasks>();
        return builder;
    }

    public static string ConnectionString(IConfiguration configuration) =>
        configuration.GetConnectionString(ConnectionStringName) is { Length: > 0 } value
            ? value
            : throw new InvalidOperationException($"ConnectionStrings:{ConnectionStringName} is not set");
}
