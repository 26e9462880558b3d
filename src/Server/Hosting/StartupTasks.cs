using System.Text.Json;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using WebDefense.Core.Data;
using WebDefense.Core.Models;
using WebDefense.Server.Auth;
using WebDefense.Server.Data;
using WebDefense.Server.Jobs;

namespace WebDefense.Server.Hosting;

/// <summary>
/// Before the server listens and before its job server starts: applies migrations (EF Core locks the database
/// against concurrent migrators); in processes that serve the web, creates the admin, team "default" and admin key on
/// first start and seeds the demo; with the in-memory queue, queues again the runs found Queued or Running (it
/// forgets its jobs). The PostgreSQL queue keeps its jobs, and a dead worker's job comes back by itself.
/// </summary>
public sealed class StartupTasks(
    IServiceScopeFactory scopes, IOptions<WebDefenseOptions> options, EngineStatus engine, RunDevice device, ILogger<StartupTasks> log) : IHostedService
{
    public async Task StartAsync(CancellationToken ct)
    {
        var o = options.Value;
        log.LogInformation("Data directory {DataPath} (database, uploads, artifacts, login keys; back it up, keep it across rebuilds)", o.DataPath);
        log.LogInformation("Role {Role}, storage {Storage}, device {Device} ({Resolved}), queue {Queue}", o.Role, o.Storage, device.Setting, device.Resolved, device.Queue);
        log.LogInformation("Tensor engine: {Detail}", engine.Detail);
        Directory.CreateDirectory(o.ArtifactsPath);
        if (o.ServesWeb && Directory.Exists(o.TempPath)) Directory.Delete(o.TempPath, recursive: true);
        using var scope = scopes.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        await db.Database.MigrateAsync(ct);
        if (db.Database.IsSqlite()) await db.Database.ExecuteSqlRawAsync("PRAGMA journal_mode=WAL;", ct);
        if (o.ServesWeb)
        {
            var team = await BootstrapAsync(scope.ServiceProvider, db, o.Bootstrap);
            if (team is not null && o.Bootstrap.SeedDemo) await SeedDemoAsync(scope.ServiceProvider, db, team.Value);
        }

        if (o.Storage == StorageKind.Sqlite) await RequeueAsync(db, scope.ServiceProvider.GetRequiredService<RunQueue>(), ct);
    }

    public Task StopAsync(CancellationToken ct) => Task.CompletedTask;

    /// <summary>Where the first start writes the credentials it generated (in the data directory, mode 600).</summary>
    public const string CredentialsFile = "first-start-credentials.txt";

    private static void WriteOwnerOnly(string path, string text)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using var stream = new FileStream(path, options);
        using var writer = new StreamWriter(stream);
        writer.Write(text);
    }

    /// <summary>Returns the default team's id when the bootstrap ran now (first start), else null.</summary>
    private async Task<Guid?> BootstrapAsync(IServiceProvider services, AppDbContext db, BootstrapOptions bootstrap)
    {
        var roles = services.GetRequiredService<RoleManager<IdentityRole<Guid>>>();
        if (!await roles.RoleExistsAsync(AuthServices.AdminRole)) await roles.CreateAsync(new IdentityRole<Guid>(AuthServices.AdminRole));
        if (await db.Users.AnyAsync()) return null;

        var team = new Team { Name = "default" };
        db.Teams.Add(team);
        await db.SaveChangesAsync();
        var users = services.GetRequiredService<UserManager<User>>();
        var password = bootstrap.AdminPassword ?? AdminCommand.GeneratePassword();
        var admin = new User { UserName = bootstrap.AdminEmail, Email = bootstrap.AdminEmail, EmailConfirmed = true, TeamId = team.Id };
        var created = await users.CreateAsync(admin, password);
        if (!created.Succeeded) throw new InvalidOperationException("creating the admin failed: " + string.Join("; ", created.Errors.Select(e => e.Description)));
        await users.AddToRoleAsync(admin, AuthServices.AdminRole);
        var (_, raw) = await ApiKeys.CreateAsync(db, admin.Id, "bootstrap", bootstrap.AdminApiKey);
        if (bootstrap.AdminApiKey is null || bootstrap.AdminPassword is null)
        {
            // Generated secrets go to a file only the owner can read, in the data directory, never into the log.
            var file = Path.Combine(options.Value.DataPath, CredentialsFile);
            var text = $"WebDefense first start, {DateTimeOffset.UtcNow:O}\nadmin e-mail: {bootstrap.AdminEmail}\n" +
                       $"password: {(bootstrap.AdminPassword is null ? password : "(from configuration)")}\n" +
                       $"API key: {(bootstrap.AdminApiKey is null ? raw : "(from configuration)")}\n" +
                       "Log in with POST /api/auth/login {\"email\",\"password\"} or send the header 'X-Api-Key: <key>'.\n" +
                       "Lost them later? WebDefense.Server admin reset-password EMAIL / admin issue-key EMAIL (README, \"Access\").\n";
            WriteOwnerOnly(file, text);
            log.LogWarning("First start: created admin {Email} in team 'default'; the generated password and API key are in {File} (readable by this user only)",
                bootstrap.AdminEmail, file);
        }
        else
        {
            log.LogInformation("First start: created admin {Email} in team 'default' with the configured password and API key", bootstrap.AdminEmail);
        }

        return team.Id;
    }

    private async Task SeedDemoAsync(IServiceProvider services, AppDbContext db, Guid team)
    {
        var store = services.GetRequiredService<ArtifactStore>();
        if (!engine.Available)
        {
            log.LogWarning("Demo seed skipped: the tensor engine is unavailable");
            return;
        }

        if (File.Exists(DemoData.ModelPath))
        {
            try
            {
                var input = InputSpec.Create(1, 28, 28);
                using var loaded = ModelLoader.Load(DemoData.ModelPath, new ModelDeclaration("smallcnn", 10, input));
                var sha = ArtifactStore.Hash(DemoData.ModelPath);
                db.Models.Add(new ModelRecord
                {
                    TeamId = team, Name = "Demo: Fashion-MNIST SmallCNN, BadNets (target 0)", FileName = Path.GetFileName(DemoData.ModelPath),
                    Format = loaded.Format.ToString(), Architecture = "smallcnn", NumClasses = 10, Channels = 1, Height = 28, Width = 28,
                    Mean = "0", Std = "1", ParameterCount = loaded.ParameterCount, Sha256 = sha, SizeBytes = new FileInfo(DemoData.ModelPath).Length,
                    StoredName = store.Add(DemoData.ModelPath, sha, DemoData.ModelPath, move: false), Warnings = JsonSerializer.Serialize(loaded.Warnings),
                });
            }
            catch (ModelFileException e)
            {
                log.LogWarning("Demo model skipped: {Message}", e.Message);
            }
        }
        else
        {
            log.LogWarning("Demo model skipped: {Path} is missing", DemoData.ModelPath);
        }

        if (!DemoData.FashionMnistAvailable)
        {
            log.LogWarning("Demo data sets skipped: {Directory} is missing (apt-get install dataset-fashion-mnist)", DemoData.FashionMnistDirectory);
        }
        else
        {
            var directory = Path.Combine(options.Value.TempPath, "demo");
            foreach (var (kind, name, path) in DemoData.Write(directory))
            {
                using var data = DatasetReader.Read(path);
                var classes = data.Data.Classes();
                var sha = ArtifactStore.Hash(path);
                db.Datasets.Add(new DatasetRecord
                {
                    TeamId = team, Name = name, Kind = kind, FileName = Path.GetFileName(path), Count = data.Data.Count,
                    Channels = data.Data.Channels, Height = data.Data.Height, Width = data.Data.Width,
                    Classes = JsonSerializer.Serialize(classes), MaxLabel = (int)classes.Max(), Sha256 = sha, SizeBytes = new FileInfo(path).Length,
                    StoredName = store.Add(path, sha, path, move: true),
                });
            }
        }

        await db.SaveChangesAsync();
        log.LogInformation("Demo seeded: trigger {Trigger}, target label {Target}", DemoData.TriggerJson, DemoData.TargetLabel);
    }

    private async Task RequeueAsync(AppDbContext db, RunQueue queue, CancellationToken ct)
    {
        // Nothing executes yet in this process: a Running run was interrupted by the last shutdown.
        await db.Runs.Where(r => r.Status == RunStatus.Running)
            .ExecuteUpdateAsync(s => s.SetProperty(r => r.Status, RunStatus.Queued).SetProperty(r => r.Message, "re-queued after a restart"), ct);
        var queued = await db.Runs.Where(r => r.Status == RunStatus.Queued).OrderBy(r => r.CreatedAt).Select(r => r.Id).ToListAsync(ct);
        foreach (var id in queued) queue.Enqueue(id);
        if (queued.Count > 0) log.LogInformation("Re-queued {Count} run(s) left from the last start", queued.Count);
    }
}
