using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.AspNetCore.Components.WebAssembly.Http;

namespace WebDefense.Client.Api;

/// <summary>One server-sent event of a run: its type (snapshot, status, step, progress, point, log, metrics, completed, failed, heartbeat) and JSON data.</summary>
public sealed record RunEventMessage(string Type, JsonElement Data);

/// <summary>The artifacts of a run, as GET /api/runs/{id}/artifacts/{name} names them.</summary>
public static class RunArtifacts
{
    /// <summary>The purified model (post-training) or the trained model (training-time), as a PyTorch state dict.</summary>
    public const string Model = "model";
    public const string MetricsJson = "metrics.json";
    public const string MetricsCsv = "metrics.csv";
    public const string Log = "log";

    /// <summary>Training-time runs: one row per training sample (index, label, suspected, suspicion, consistency_kl[, poisoned]).</summary>
    public const string SuspectedCsv = "suspected.csv";
}

/// <summary>
/// The dashboard's only way to the server: a typed client over the public REST API (same origin, the login cookie
/// travels with every call). Non-success answers throw <see cref="ApiException"/>.
/// </summary>
public sealed class WebDefenseApi(HttpClient http)
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public HttpClient Http => http;

    // Auth
    public async Task<Me?> MeAsync(CancellationToken ct = default)
    {
        using var response = await http.GetAsync("api/auth/me", ct);
        if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden) return null;
        return await ReadAsync<Me>(response, ct);
    }

    public async Task<Me> LoginAsync(string email, string password, CancellationToken ct = default) =>
        await SendAsync<Me>(HttpMethod.Post, "api/auth/login", new LoginRequest(email, password), ct);

    public async Task LogoutAsync(CancellationToken ct = default) => await SendAsync(HttpMethod.Post, "api/auth/logout", null, ct);

    // Models and data sets
    public Task<ModelInfo[]> ModelsAsync(CancellationToken ct = default) => GetAsync<ModelInfo[]>("api/models", ct);

    public Task<ArchitectureInfo[]> ArchitecturesAsync(CancellationToken ct = default) => GetAsync<ArchitectureInfo[]>("api/models/architectures", ct);

    public Task<DatasetInfo[]> DatasetsAsync(string? kind = null, CancellationToken ct = default) =>
        GetAsync<DatasetInfo[]>(kind is null ? "api/datasets" : $"api/datasets?kind={Uri.EscapeDataString(kind)}", ct);

    public Task<ModelInfo> UploadModelAsync(UploadFile file, IReadOnlyDictionary<string, string> fields, CancellationToken ct = default) =>
        UploadAsync<ModelInfo>("api/models", file, fields, ct);

    public Task<DatasetInfo> UploadDatasetAsync(UploadFile file, IReadOnlyDictionary<string, string> fields, CancellationToken ct = default) =>
        UploadAsync<DatasetInfo>("api/datasets", file, fields, ct);

    /// <summary>URL of a PNG of sample <paramref name="index"/> of a data set, with the trigger (JSON) applied when given.</summary>
    public static string SampleUrl(Guid datasetId, int index, string? triggerJson, int scale = 6) =>
        $"api/datasets/{datasetId}/samples/{index}.png?scale={scale}" + (triggerJson is null ? "" : $"&trigger={Uri.EscapeDataString(triggerJson)}");

    // Defenses and runs
    public Task<DefenseInfo[]> DefensesAsync(CancellationToken ct = default) => GetAsync<DefenseInfo[]>("api/defenses", ct);

    public Task<StartRunResponse> StartRunAsync(StartRunRequest request, CancellationToken ct = default) =>
        SendAsync<StartRunResponse>(HttpMethod.Post, "api/runs", request, ct);

    public Task<RunInfo> RunAsync(Guid id, CancellationToken ct = default) => GetAsync<RunInfo>($"api/runs/{id}", ct);

    public Task<RunPage> RunsAsync(RunQuery query, CancellationToken ct = default) => GetAsync<RunPage>($"api/runs?{query.ToQueryString()}", ct);

    public Task<TrajectoryPoint[]> TrajectoryAsync(Guid id, CancellationToken ct = default) => GetAsync<TrajectoryPoint[]>($"api/runs/{id}/trajectory", ct);

    public Task<RunInfo> CancelAsync(Guid id, CancellationToken ct = default) => SendAsync<RunInfo>(HttpMethod.Post, $"api/runs/{id}/cancel", null, ct);

    public Task DeleteRunAsync(Guid id, CancellationToken ct = default) => SendAsync(HttpMethod.Delete, $"api/runs/{id}", null, ct);

    public Task<StartRunResponse> RerunAsync(Guid id, CancellationToken ct = default) => SendAsync<StartRunResponse>(HttpMethod.Post, $"api/runs/{id}/rerun", null, ct);

    public async Task<string> LogAsync(Guid id, CancellationToken ct = default)
    {
        using var response = await http.GetAsync(ArtifactUrl(id, RunArtifacts.Log), ct);
        if (!response.IsSuccessStatusCode) throw await ApiException.FromResponseAsync(response, ct);
        return await response.Content.ReadAsStringAsync(ct);
    }

    /// <summary>URL of one artifact of a run (see <see cref="RunArtifacts"/>); the browser downloads it with the login cookie.</summary>
    public static string ArtifactUrl(Guid runId, string artifact) => $"api/runs/{runId}/artifacts/{artifact}";

    /// <summary>URL of every artifact of a run in one zip.</summary>
    /// <summary>A scan's file: scan.json or trigger-N-mask.png, trigger-N-pattern.png, trigger-N-example.png.</summary>
    public static string ScanArtifactUrl(Guid runId, string file) => $"api/runs/{runId}/artifacts/scan/{file}";

    public static string ArtifactsZipUrl(Guid runId) => $"api/runs/{runId}/artifacts.zip";

    /// <summary>URL of the CSV export of every run the query matches (its filters and sort, no paging).</summary>
    public static string ExportUrl(RunQuery query) => $"api/runs/export.csv?{query.ToQueryString()}";

    public Task<QueueStatus> StatusAsync(CancellationToken ct = default) => GetAsync<QueueStatus>("api/status", ct);

    /// <summary>The run's live events (server-sent events), starting with a snapshot; ends when the run finishes or the server closes the stream.</summary>
    public async IAsyncEnumerable<RunEventMessage> EventsAsync(Guid id, [EnumeratorCancellation] CancellationToken ct = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"api/runs/{id}/events");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        request.SetBrowserResponseStreamingEnabled(true);
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        if (!response.IsSuccessStatusCode) throw await ApiException.FromResponseAsync(response, ct);
        await using var stream = await response.Content.ReadAsStreamAsync(ct);
        await foreach (var message in ServerSentEvents.ReadAsync(stream, ct)) yield return message;
    }

    // Admin
    public Task<TeamInfo[]> TeamsAsync(CancellationToken ct = default) => GetAsync<TeamInfo[]>("api/admin/teams", ct);

    public Task<TeamInfo> CreateTeamAsync(string name, CancellationToken ct = default) => SendAsync<TeamInfo>(HttpMethod.Post, "api/admin/teams", new CreateTeamRequest(name), ct);

    public Task<UserInfo[]> UsersAsync(CancellationToken ct = default) => GetAsync<UserInfo[]>("api/admin/users", ct);

    public Task<UserInfo> CreateUserAsync(CreateUserRequest request, CancellationToken ct = default) => SendAsync<UserInfo>(HttpMethod.Post, "api/admin/users", request, ct);

    public Task<KeyInfo[]> KeysAsync(Guid userId, CancellationToken ct = default) => GetAsync<KeyInfo[]>($"api/admin/users/{userId}/keys", ct);

    public Task<CreatedKey> CreateKeyAsync(Guid userId, string? name, CancellationToken ct = default) =>
        SendAsync<CreatedKey>(HttpMethod.Post, $"api/admin/users/{userId}/keys", new CreateKeyRequest(name), ct);

    public Task RevokeKeyAsync(Guid keyId, CancellationToken ct = default) => SendAsync(HttpMethod.Delete, $"api/admin/keys/{keyId}", null, ct);

    private async Task<T> GetAsync<T>(string url, CancellationToken ct)
    {
        using var response = await http.GetAsync(url, ct);
        return await ReadAsync<T>(response, ct);
    }

    private async Task<T> SendAsync<T>(HttpMethod method, string url, object? body, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, url) { Content = body is null ? null : JsonContent.Create(body, body.GetType(), options: Json) };
        using var response = await http.SendAsync(request, ct);
        return await ReadAsync<T>(response, ct);
    }

    private async Task SendAsync(HttpMethod method, string url, object? body, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, url) { Content = body is null ? null : JsonContent.Create(body, body.GetType(), options: Json) };
        using var response = await http.SendAsync(request, ct);
        if (!response.IsSuccessStatusCode) throw await ApiException.FromResponseAsync(response, ct);
    }

    private async Task<T> UploadAsync<T>(string url, UploadFile file, IReadOnlyDictionary<string, string> fields, CancellationToken ct)
    {
        using var form = new MultipartFormDataContent();
        foreach (var (key, value) in fields) form.Add(new StringContent(value), key);
        var content = new StreamContent(file.Content);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        form.Add(content, "file", file.Name);
        using var response = await http.PostAsync(url, form, ct);
        return await ReadAsync<T>(response, ct);
    }

    private static async Task<T> ReadAsync<T>(HttpResponseMessage response, CancellationToken ct)
    {
        if (!response.IsSuccessStatusCode) throw await ApiException.FromResponseAsync(response, ct);
        return await response.Content.ReadFromJsonAsync<T>(Json, ct)
            ?? throw new ApiException(response.StatusCode, "the server answered with an empty body", new Dictionary<string, string[]>());
    }
}
