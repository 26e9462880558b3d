using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace WebDefense.Experiments;

/// <summary>
/// Where a run's wait goes, through a running service: starts --runs runs one after the other (seeds 1, 2, …) of
/// --defense on the given model and data sets and splits each one's time from the request to the finished record into
/// queueing, the worker's start and the server's bookkeeping, loading, the evaluation before, the defense, the
/// evaluation after and the rest (scan, copies, writing files), from the run record and its metrics.json timings.
/// </summary>
internal static class RunWaitCommand
{
    public static void Run(ExperimentOptions options) => RunAsync(options).GetAwaiter().GetResult();

    private static async Task RunAsync(ExperimentOptions options)
    {
        using var http = new HttpClient { BaseAddress = new Uri(options.Text("base", "http://127.0.0.1:5077/")), Timeout = TimeSpan.FromMinutes(5) };
        http.DefaultRequestHeaders.Add("X-Api-Key", options.Text("key", Environment.GetEnvironmentVariable("WD_KEY") ?? ""));
        var parameters = options.Text("params", "").Split(',', StringSplitOptions.RemoveEmptyEntries)
            .Select(kv => kv.Split('=', 2)).ToDictionary(kv => kv[0], kv => (object)(double.TryParse(kv[1], CultureInfo.InvariantCulture, out var n) ? n : bool.TryParse(kv[1], out var b) ? b : kv[1]));
        string? Id(string key) => options.Text(key, "") is { Length: > 0 } v ? v : null;
        var report = new StringBuilder();
        report.AppendLine(CultureInfo.InvariantCulture, $"{options.Text("label", "")} {options.Text("defense", "ft")} {options.Text("params", "")}");
        report.AppendLine("| run | total s | queued s | worker start + bookkeeping s | loading s | evaluate before s | defense s | evaluate after s | rest s | before reused |");
        report.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        for (var seed = 1; seed <= options.Int("runs", 2); seed++)
        {
            var start = await http.PostAsJsonAsync("api/runs", new
            {
                modelId = Id("model"), defense = options.Text("defense", "ft"), cleanDatasetId = Id("clean"), testDatasetId = Id("test"),
                backdoorTestDatasetId = Id("backdoor-test"), targetLabel = options.Int("target", 0), seed, parameters,
            });
            var body = await start.Content.ReadAsStringAsync();
            if (!start.IsSuccessStatusCode) throw new InvalidOperationException($"{(int)start.StatusCode}: {body}");
            var id = JsonDocument.Parse(body).RootElement.GetProperty("runIds")[0].GetGuid();
            JsonElement run;
            while (true)
            {
                run = await http.GetFromJsonAsync<JsonElement>($"api/runs/{id}");
                if (run.GetProperty("status").GetString() is "Succeeded" or "Failed" or "Cancelled") break;
                await Task.Delay(250);
            }

            if (run.GetProperty("status").GetString() != "Succeeded") throw new InvalidOperationException($"run {id}: {run.GetProperty("status")} {run.GetProperty("error")}");
            var metrics = await http.GetFromJsonAsync<JsonElement>($"api/runs/{id}/artifacts/metrics.json");
            var t = metrics.GetProperty("timings");
            double T(string name) => t.TryGetProperty(name, out var v) ? v.GetDouble() : double.NaN;
            var created = run.GetProperty("createdAt").GetDateTimeOffset();
            var started = run.GetProperty("startedAt").GetDateTimeOffset();
            var finished = run.GetProperty("finishedAt").GetDateTimeOffset();
            var total = (finished - created).TotalSeconds;
            var queued = (started - created).TotalSeconds;
            var wall = T("wallSeconds");
            var (before, after) = (T("evaluateBeforeSeconds"), T("evaluateAfterSeconds"));
            // Older builds recorded no split: their evaluations are the runner's time outside the defense.
            var evaluations = double.IsNaN(before) ? T("runSeconds") - T("defenseSeconds") : before + after;
            var rest = wall - T("loadSeconds") - T("defenseSeconds") - evaluations;
            string F(double v) => double.IsNaN(v) ? "–" : v.ToString("0.0", CultureInfo.InvariantCulture);
            var reused = run.TryGetProperty("beforeReusedFrom", out var r) && r.ValueKind == JsonValueKind.String ? "yes" : "no";
            report.AppendLine(CultureInfo.InvariantCulture,
                $"| seed {seed} | {F(total)} | {F(queued)} | {F(total - queued - wall)} | {F(T("loadSeconds"))} | {(double.IsNaN(before) ? $"{F(evaluations)} (both)" : F(before))} | {F(T("defenseSeconds"))} | {(double.IsNaN(after) ? "" : F(after))} | {F(rest)} | {reused} |");
        }

        Console.WriteLine(report);
        if (options.Text("out", "") is { Length: > 0 } output) File.AppendAllText(output, report + Environment.NewLine);
    }
}
