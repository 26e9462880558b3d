using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace WebDefense.Experiments;

/// <summary>
/// Read latency of a running service while a run executes: starts one long run (FT on the server's demo model and
/// data, cancelled at the end), then --clients clients each send reads back to back for --seconds (the mix a
/// dashboard and a polling script make: status, the runs list, one run, its trajectory, models, data sets, health).
/// Prints and (with --out) writes requests, errors and latency percentiles, overall and per endpoint.
/// </summary>
internal static class ApiLoadCommand
{
    public static void Run(ExperimentOptions options) => RunAsync(options).GetAwaiter().GetResult();

    private static async Task RunAsync(ExperimentOptions options)
    {
        var baseUrl = options.Text("base", "http://127.0.0.1:5077/");
        var key = options.Text("key", Environment.GetEnvironmentVariable("WD_KEY") ?? "");
        var clients = options.Int("clients", 30);
        var seconds = options.Int("seconds", 60);
        var label = options.Text("label", "");
        var rate = options.Number("rate", 0);
        var warm = options.Int("warm", 15);
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = clients + 4 }) { BaseAddress = new Uri(baseUrl), Timeout = TimeSpan.FromSeconds(30) };
        http.DefaultRequestHeaders.Add("X-Api-Key", key);

        var model = (await http.GetFromJsonAsync<JsonElement>("api/models")).EnumerateArray().First();
        var datasets = (await http.GetFromJsonAsync<JsonElement>("api/datasets")).EnumerateArray().ToList();
        Guid Set(string kind) => datasets.First(d => d.GetProperty("kind").GetString() == kind).GetProperty("id").GetGuid();
        var withRun = options.Int("run", 1) == 1;
        var start = await http.PostAsJsonAsync("api/runs", new
        {
            modelId = model.GetProperty("id").GetGuid(), defense = "ft", cleanDatasetId = Set("clean"), testDatasetId = Set("test"),
            backdoorTestDatasetId = Set("backdoor-test"), targetLabel = 0, seed = 1,
            parameters = new Dictionary<string, object> { ["epochs"] = 1000, ["scan"] = false },
        });
        var started = await start.Content.ReadFromJsonAsync<JsonElement>();
        var runId = started.GetProperty("runIds")[0].GetGuid();
        if (!withRun) await http.PostAsync($"api/runs/{runId}/cancel", null);
        Console.WriteLine(withRun ? $"run {runId} started; waiting until it executes" : $"run {runId} cancelled at once: reads of a finished run, no run executing");
        for (var i = 0; i < 120 && withRun; i++)
        {
            var status = (await http.GetFromJsonAsync<JsonElement>($"api/runs/{runId}")).GetProperty("status").GetString();
            if (status == "Running") break;
            await Task.Delay(500);
        }

        // Let the worker get past loading into its training loop.
        await Task.Delay(TimeSpan.FromSeconds(withRun ? options.Int("warmup", 10) : 2));
        string[] paths = ["api/status", "api/runs?page=1&pageSize=20", $"api/runs/{runId}", $"api/runs/{runId}/trajectory", "api/models", "api/datasets", "health"];
        var samples = new List<(string Path, double Ms, bool Ok)>();
        // A warm-up of the same load first (JIT, connection pools, SQLite caches), not counted.
        await LoadAsync(http, paths, runId, clients, warm, rate, []);
        await LoadAsync(http, paths, runId, clients, seconds, rate, samples);
        var stillRunning = (await http.GetFromJsonAsync<JsonElement>($"api/runs/{runId}")).GetProperty("status").GetString();
        await http.PostAsync($"api/runs/{runId}/cancel", null);

        var report = new StringBuilder();
        report.AppendLine(CultureInfo.InvariantCulture, $"{label} {clients} clients {(rate > 0 ? $"at {rate:0.#} requests/s each" : "back to back")}, {seconds} s after {warm} s of warm-up, {(withRun ? $"the run {stillRunning} at the end" : "no run executing")}: {samples.Count} requests, {samples.Count(s => !s.Ok)} errors, {samples.Count / (double)seconds:0} requests/s served");
        report.AppendLine("| endpoint | requests | errors | p50 ms | p95 ms | p99 ms | max ms |");
        report.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
        foreach (var group in samples.GroupBy(s => s.Path).OrderBy(g => g.Key).Append(samples.GroupBy(_ => "**all reads**").Single()))
        {
            var ms = group.Select(s => s.Ms).Order().ToArray();
            double P(double q) => ms[Math.Min(ms.Length - 1, (int)Math.Ceiling(q * ms.Length) - 1)];
            report.AppendLine(CultureInfo.InvariantCulture, $"| {group.Key} | {ms.Length} | {group.Count(s => !s.Ok)} | {P(0.5):0} | {P(0.95):0} | {P(0.99):0} | {ms[^1]:0} |");
        }

        Console.WriteLine(report);
        if (options.Text("out", "") is { Length: > 0 } output) File.AppendAllText(output, report + Environment.NewLine);
    }

    /// <summary>
    /// Each client reads the endpoints in turn: back to back (rate 0: the server's capacity, latency is then mostly
    /// queueing), or at a fixed rate, timed from when each request was due so that a slow answer delays the measurement
    /// of the ones behind it instead of hiding them.
    /// </summary>
    private static async Task LoadAsync(HttpClient http, string[] paths, Guid runId, int clients, int seconds, double rate, List<(string, double, bool)> samples)
    {
        var clock = Stopwatch.StartNew();
        var tasks = Enumerable.Range(0, clients).Select(c => Task.Run(async () =>
        {
            var mine = new List<(string, double, bool)>();
            var offset = rate > 0 ? c / (rate * clients) : 0;
            for (var n = 0; clock.Elapsed.TotalSeconds < seconds; n++)
            {
                var path = paths[(n + c) % paths.Length];
                var due = rate > 0 ? offset + n / rate : clock.Elapsed.TotalSeconds;
                if (due >= seconds) break;
                var wait = due - clock.Elapsed.TotalSeconds;
                if (wait > 0) await Task.Delay(TimeSpan.FromSeconds(wait));
                bool ok;
                try
                {
                    using var response = await http.GetAsync(path);
                    await response.Content.ReadAsByteArrayAsync();
                    ok = response.IsSuccessStatusCode;
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                {
                    ok = false;
                }

                mine.Add((path.Replace(runId.ToString(), "{id}", StringComparison.Ordinal), (clock.Elapsed.TotalSeconds - due) * 1000, ok));
            }

            lock (samples) samples.AddRange(mine);
        })).ToArray();
        await Task.WhenAll(tasks);
    }
}
