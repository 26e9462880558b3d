using Hangfire;
using Hangfire.Dashboard;
using Hangfire.InMemory;
using Microsoft.Extensions.Options;
using WebDefense.Server.Auth;
using WebDefense.Server.Hosting;

namespace WebDefense.Server.Jobs;

public static class JobServices
{
    /// <summary>Hangfire with in-memory storage and a dedicated queue served by WorkerCount workers.</summary>
    public static WebApplicationBuilder AddJobServices(this WebApplicationBuilder builder)
    {
        builder.Services.AddHangfire(c => c
            .SetDataCompatibilityLevel(CompatibilityLevel.Version_180)
            .UseSimpleAssemblyNameTypeSerializer()
            .UseRecommendedSerializerSettings()
            .UseInMemoryStorage(new InMemoryStorageOptions { MaxExpirationTime = TimeSpan.FromHours(6) }));
        builder.Services.AddHangfireServer((sp, server) =>
        {
            server.Queues = [RunQueue.Queue];
            server.WorkerCount = sp.GetRequiredService<IOptions<WebDefenseOptions>>().Value.WorkerCount;
            server.ServerName = $"webdefense-{Environment.ProcessId}";
        });
        builder.Services.AddSingleton<RunCancellations>();
        builder.Services.AddSingleton<RunUpdates>();
        builder.Services.AddSingleton<RunQueue>();
        builder.Services.AddScoped<RunJob>();
        builder.Services.AddSingleton<IRunExecutor>(sp =>
        {
            var log = sp.GetRequiredService<ILogger<ProcessRunExecutor>>();
            return new ProcessRunExecutor(new ProcessRunExecutorOptions(), message => log.LogInformation("{Message}", message));
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
