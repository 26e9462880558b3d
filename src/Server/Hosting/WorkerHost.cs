using WebDefense.Server.Data;
using WebDefense.Server.Jobs;

namespace WebDefense.Server.Hosting;

/// <summary>
/// The worker role (<c>WebDefense:Role=worker</c>): a Hangfire server on its device kind's queue in the shared
/// PostgreSQL storage, executing runs in child processes; it serves /health only, no API and no UI.
/// </summary>
public static class WorkerHost
{
    public static bool IsWorkerRole(this WebApplicationBuilder builder) =>
        builder.Configuration.GetSection(WebDefenseOptions.Section).GetValue(nameof(WebDefenseOptions.Role), ProcessRole.All) == ProcessRole.Worker;

    public static int Run(WebApplicationBuilder builder)
    {
        builder.AddEngineServices();
        builder.AddDataServices();
        builder.AddJobServices();
        var app = builder.Build();
        app.MapHealthApi();
        app.Run();
        return 0;
    }
}
