using Hangfire;
using Hangfire.Dashboard;
using Hangfire.InMemory;
using Hangfire.PostgreSql;
using Microsoft.Extensions.Options;
using WebDefense.Server.Auth;
using WebDefense.Server.Data;
using WebDefense.Server.Hosting;

namespace WebDefense.Server.Jobs;

public static class JobServices
{
    /// <summary>
    /// Hangfire: in-memory storage with SQLite (one process), or PostgreSQL (schema hangfire) shared by web and worker
    /// processes. Processes that execute runs (roles all and worker) add a job server on their device kind's queue.
    /// </summary>
    public static WebApplicationBuilder AddJobServices(this WebApplicationBuilder builder)
    {
        builder.Services.AddHangfire((sp, c) =>
        {
            var options = sp.GetRequiredService<IOptions<WebDefenseOptions>>().Value;
            c.SetDataCompatibilityLevel(CompatibilityLevel.Version_180)
                .UseSimpleAssemblyNameTypeSerializer()
                .UseRecommendedSerializerSettings();
            if (options.Storage == StorageKind.Postgres)
            {
                var connection = DataServices.ConnectionString(sp.GetRequiredService<IConfiguration>());
                c.UsePostgreSqlStorage(b => b.UseNpgsqlConnection(connection), new PostgreSqlStorageOptions
                {
                    // A live worker moves its fetched job's timestamp forward; a dead worker's job is handed out again after this.
                    UseSlidingInvisibilityTimeout = true,
                    InvisibilityTimeout = TimeSpan.FromSeconds(options.InvisibilityTimeoutSeconds),
                    QueuePollInterval = TimeSpan.FromSeconds(options.QueuePollSeconds),
                    PrepareSchemaIfNecessary = true,
                });
            }
            else
            {
                c.UseInMemoryStorage(new InMemoryStorageOptions { MaxExpirationTime = TimeSpan.FromHours(6) });
            }
        });
        var role = builder.Configuration.GetSection(WebDefenseOptions.Section).GetValue(nameof(WebDefenseOptions.Role), ProcessRole.All);
        if (role != ProcessRole.Web)
        {
            builder.Services.AddHangfireServer((sp, server) =>
            {
                var options = sp.GetRequiredService<IOptions<WebDefenseOptions>>().Value;
                server.Queues = [sp.GetRequiredService<RunDevice>().Queue];
                server.WorkerCount = options.WorkerCount;
                server.ServerName = RunClaims.WorkerName;
            });
        }

        builder.Services.AddSingleton<RunDevice>();
        builder.Services.AddSingleton<RunClaims>();
        builder.Services.AddSingleton<RunCancellations>();
        builder.Services.AddSingleton<RunUpdates>();
        builder.Services.AddSingleton<RunQueue>();
        builder.Services.AddScoped<RunJob>();
        builder.Services.AddSingleton<IRunExecutor>(sp =>
        {
            var log = sp.GetRequiredService<ILogger<ProcessRunExecutor>>();
            var options = sp.GetRequiredService<IOptions<WebDefenseOptions>>().Value;
            return new ProcessRunExecutor(new ProcessRunExecutorOptions { Nice = options.WorkerNice }, message => log.LogInformation("{Message}", message));
        });
        return builder;
    }

    public static IEndpointRouteBuilder MapJobsDashboard(this IEndpointRouteBuilder app)
    {
        app.MapHangfireDashboard("/hangfire", new DashboardOptions { Authorization = [new AdminDashboardFilter()], DisplayStorageConnectionString = false });
        return app;
    }

    private sealed class AdminDashboardFilter : IDashboardAuthorizationFilter
    {
        public bool Authorize(DashboardContext context) => context.GetHttpContext().User.IsInRole(AuthServices.AdminRole);
    }
}
