using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using MudBlazor.Services;
using WebDefense.Client;
using WebDefense.Client.Api;

namespace WebDefense.Client.Tests;

/// <summary>
/// Answers captured from the real API (GET /api/defenses, a finished RNP run and its trajectory…), and answers written by
/// hand to the API contract where the server does not serve them yet (advrbd-*.json, poisoned-train-datasets.json: each
/// says so in its leading // comment lines, which <see cref="Text"/> leaves out).
/// </summary>
public static class Fixtures
{
    public static string Text(string name)
    {
        var text = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", name));
        while (text.StartsWith("//", StringComparison.Ordinal)) text = text.IndexOf('\n') is var end and >= 0 ? text[(end + 1)..] : "";
        return text;
    }

    public static T Read<T>(string name) => JsonSerializer.Deserialize<T>(Text(name), WebDefenseApi.Json)!;

    public static DefenseInfo Defense(string name) => Read<DefenseInfo[]>("defenses.json").Single(d => d.Name == name);

    public static RunInfo RnpRun => Read<RunInfo>("rnp-run.json");

    public static TrajectoryPoint[] RnpTrajectory => Read<TrajectoryPoint[]>("rnp-trajectory.json");

    public static RunInfo AdvrbdRun => Read<RunInfo>("advrbd-run.json");

    public static TrajectoryPoint[] AdvrbdTrajectory => Read<TrajectoryPoint[]>("advrbd-trajectory.json");

    /// <summary>The poisoned training set of the AdvrBD run (GET /api/datasets?kind=poisoned-train).</summary>
    public static DatasetInfo PoisonedTrainSet => Read<DatasetInfo[]>("poisoned-train-datasets.json").Single();

    /// <summary>GET /api/datasets: the captured sets plus the poisoned training set.</summary>
    public static string DatasetsWithPoisonedTrain()
    {
        var all = System.Text.Json.Nodes.JsonNode.Parse(Text("datasets.json"))!.AsArray();
        foreach (var d in System.Text.Json.Nodes.JsonNode.Parse(Text("poisoned-train-datasets.json"))!.AsArray()) all.Insert(0, d!.DeepClone());
        return all.ToJsonString();
    }
}

/// <summary>A fake server: maps "METHOD path" to a response and records every request.</summary>
public sealed class FakeApi : HttpMessageHandler
{
    private readonly Dictionary<string, Func<HttpRequestMessage, HttpResponseMessage>> _routes = new(StringComparer.Ordinal);

    public List<(HttpMethod Method, string Path, string? Body)> Requests { get; } = [];

    public List<string> Queries { get; } = [];

    public FakeApi On(string method, string path, Func<HttpRequestMessage, HttpResponseMessage> answer)
    {
        _routes[$"{method} {path}"] = answer;
        return this;
    }

    public FakeApi Json(string method, string path, string json, HttpStatusCode status = HttpStatusCode.OK, string type = "application/json") =>
        On(method, path, _ => new HttpResponseMessage(status) { Content = new StringContent(json, Encoding.UTF8, type) });

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var body = request.Content is null ? null : await request.Content.ReadAsStringAsync(cancellationToken);
        var path = request.RequestUri!.AbsolutePath;
        Requests.Add((request.Method, path, body));
        Queries.Add(request.RequestUri.Query);
        return _routes.TryGetValue($"{request.Method} {path}", out var answer)
            ? answer(request)
            : new HttpResponseMessage(HttpStatusCode.NotFound) { Content = new StringContent("{\"title\":\"Not Found\",\"status\":404}", Encoding.UTF8, "application/problem+json") };
    }
}

/// <summary>
/// A bUnit context with MudBlazor's services and the typed API client over a <see cref="FakeApi"/>. Disposed
/// asynchronously: MudBlazor's services only implement IAsyncDisposable.
/// </summary>
public abstract class DashboardTest : IAsyncLifetime
{
    protected DashboardTest()
    {
        Context.JSInterop.Mode = JSRuntimeMode.Loose;
        Context.Services.AddMudServices();
        Context.Services.AddScoped(_ => new HttpClient(Api) { BaseAddress = new Uri("http://localhost/") });
        Context.Services.AddScoped<WebDefenseApi>();
        Context.Services.AddScoped<Session>();
    }

    protected BunitContext Context { get; } = new();

    protected FakeApi Api { get; } = new();

    protected IRenderedComponent<T> Render<T>(Action<ComponentParameterCollectionBuilder<T>>? parameters = null)
        where T : Microsoft.AspNetCore.Components.IComponent =>
        parameters is null ? Context.Render<T>() : Context.Render<T>(parameters);

    /// <summary>Serves what the run page loads for a captured run: the run, its trajectory, a log line, defenses, models and the given data sets.</summary>
    protected void ServeRun(string runJson, string trajectoryJson, string datasetsJson)
    {
        var run = JsonSerializer.Deserialize<RunInfo>(runJson, WebDefenseApi.Json)!;
        Api.Json("GET", $"/api/runs/{run.Id}", runJson)
            .Json("GET", $"/api/runs/{run.Id}/trajectory", trajectoryJson)
            .Json("GET", $"/api/runs/{run.Id}/artifacts/log", "2026-11-24T09:20:02Z worker process started\n", type: "text/plain")
            .Json("GET", "/api/defenses", Fixtures.Text("defenses.json"))
            .Json("GET", "/api/models", Fixtures.Text("models.json"))
            .Json("GET", "/api/datasets", datasetsJson);
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await Context.DisposeAsync();
}
