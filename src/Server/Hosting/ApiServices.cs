using WebDefense.Server.Features.Admin;
using WebDefense.Server.Features.Auth;
using WebDefense.Server.Features.Datasets;
using WebDefense.Server.Features.Defenses;
using WebDefense.Server.Features.Models;
using WebDefense.Server.Features.Runs;
using WebDefense.Server.Features.Status;

namespace WebDefense.Server.Hosting;

public static class ApiServices
{
    /// <summary>ProblemDetails errors and the OpenAPI document.</summary>
    public static WebApplicationBuilder AddApiServices(this WebApplicationBuilder builder)
    {
        builder.Services.AddProblemDetails();
        // Binding failures throw, so that BadRequestHandler can name the field instead of a bare 400.
        builder.Services.Configure<Microsoft.AspNetCore.Routing.RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        builder.Services.AddExceptionHandler<Features.Shared.BadRequestHandler>();
        builder.Services.AddOpenApi(OpenApiContract.Configure);
        builder.Services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.Converters.Add(new System.Text.Json.Serialization.JsonStringEnumConverter());
            // Numbers are JSON numbers both ways; with the web defaults' AllowReadingFromString the document typed every
            // number "integer | string" and generated clients took either.
            o.SerializerOptions.NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.Strict;
        });
        return builder;
    }

    /// <summary>Every REST feature under /api plus /openapi/v1.json.</summary>
    public static IEndpointRouteBuilder MapWebDefenseApi(this IEndpointRouteBuilder app)
    {
        app.MapOpenApi();
        app.MapAuthApi();
        app.MapAdminApi();
        app.MapModelsApi();
        app.MapDatasetsApi();
        app.MapDefensesApi();
        app.MapRunsApi();
        app.MapStatusApi();
        return app;
    }
}
