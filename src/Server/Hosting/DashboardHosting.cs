namespace WebDefense.Server.Hosting;

/// <summary>
/// Serves the dashboard (src/Client, Blazor WebAssembly): its static files, and index.html for every other path
/// that is not the API, the job dashboard or the health probe, so deep links (/runs/{id}) load the app.
/// </summary>
public static class DashboardHosting
{
    /// <summary>
    /// From a build output (dotnet run, tests) the app's files stay in the Client project and the NuGet cache, listed by
    /// the static web assets manifest; ASP.NET reads it only in Development unless asked. A published app has them
    /// under wwwroot/ and no manifest, and this does nothing.
    /// </summary>
    public static WebApplicationBuilder AddDashboard(this WebApplicationBuilder builder)
    {
        builder.WebHost.UseStaticWebAssets();
        return builder;
    }

    private static readonly StaticFileOptions Revalidated = new()
    {
        OnPrepareResponse = file => file.Context.Response.Headers.CacheControl = "no-cache",
    };

    public static WebApplication MapDashboard(this WebApplication app)
    {
        // wwwroot/ at the repository root (the dashboard's style sheet): not fingerprinted, so browsers revalidate it.
        app.UseStaticFiles(Revalidated);
        // The WebAssembly app and MudBlazor's files: fingerprinted files cached for a year, precompressed br/gzip.
        app.MapStaticAssets();
        // index.html names this version's fingerprinted files: never served from a cache without asking.
        app.MapFallbackToFile("index.html", Revalidated);
        // Unknown API paths stay ProblemDetails rather than the app's page: 404, or 405/415 for a known path.
        app.MapFallback("/api/{**path}", (HttpContext http, EndpointDataSource endpoints) => Features.Shared.UnmatchedApiRequest.Answer(http, endpoints));
        return app;
    }
}
