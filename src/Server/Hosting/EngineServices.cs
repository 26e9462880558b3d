using Microsoft.Extensions.Options;
using WebDefense.Core.Runtime;
using WebDefense.Server.Jobs;

namespace WebDefense.Server.Hosting;

/// <summary>What the start-up probe of the tensor engine found; the ML features need <see cref="Available"/>.</summary>
public sealed record EngineStatus(bool Available, string Detail, TorchRuntimeInfo? Info);

public static class EngineServices
{
    /// <summary>Probes TorchSharp once at start-up, logs the outcome and registers it.</summary>
    public static WebApplicationBuilder AddEngineServices(this WebApplicationBuilder builder)
    {
        EngineStatus status;
        try
        {
            var info = TorchRuntime.EnsureAvailable();
            status = new EngineStatus(true, $"TorchSharp loaded from {info.NativeLibrary}", info);
        }
        catch (TorchRuntimeUnavailableException ex)
        {
            status = new EngineStatus(false, ex.Message, null);
        }

        builder.Services.AddSingleton(status);
        return builder;
    }

    public static IEndpointRouteBuilder MapHealthApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/health", (EngineStatus engine, IOptions<WebDefenseOptions> options, RunDevice device, ILogger<EngineStatus> log) =>
        {
            if (!engine.Available) log.LogError("Tensor engine unavailable: {Detail}", engine.Detail);
            var body = new
            {
                // Anonymous callers read this: whether the engine works, never where it or the service is installed (the path is in the log).
                status = engine.Available ? "ready" : "degraded", engine = engine.Available ? "TorchSharp loaded" : "TorchSharp unavailable: see the server log", cuda = engine.Info?.CudaAvailable ?? false,
                role = options.Value.Role.ToString().ToLowerInvariant(), device = device.Resolved, queue = device.Queue,
            };
            return engine.Available ? Results.Ok(body) : Results.Json(body, statusCode: StatusCodes.Status503ServiceUnavailable);
        })
        .WithName("Health")
        .WithSummary("Readiness of the service and its tensor engine.");
        return app;
    }
}
