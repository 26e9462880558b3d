using System.Diagnostics;
using System.Globalization;
using System.Net.ServerSentEvents;
using System.Text.Json;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace WebDefense.Deployment.Tests;

/// <summary>
/// The PostgreSQL deployment as separate processes started from the build output: PostgreSQL on loopback, one web
/// process and two worker processes sharing a data directory (docs/deployment.md, multi-host).
/// </summary>
public sealed partial class ScaleOutTests(ITestOutputHelper output)
{
    private const string AdminKey = "wd_deploy_test_admin_key_0123456789";

    /// <summary>Fine-tuning epochs per run: seconds of work each on the small data, long enough to be caught mid-run.</summary>
    private const int Epochs = 30;

    [GeneratedRegex(@"worker process (\d+) started")]
    private static partial Regex ChildPid();

    [Fact]
    public async Task Ten_runs_over_two_workers_each_finish_once_when_a_worker_is_killed_mid_run()
    {
        var clock = Stopwatch.StartNew();
        using var postgres = await PostgresServer.StartAsync();
        var shared = Directory.CreateTempSubdirectory("wd-deployment-").FullName;
        try
        {
            var settings = Settings(postgres, shared);
            using var web = ServiceProcess.Start("web", With(settings, "web"));
            await web.WaitHealthyAsync(TimeSpan.FromMinutes(3));
            using var a = ServiceProcess.Start("worker A", With(settings, "worker"));
            using var b = ServiceProcess.Start("worker B", With(settings, "worker"));
            await Task.WhenAll(a.WaitHealthyAsync(TimeSpan.FromMinutes(3)), b.WaitHealthyAsync(TimeSpan.FromMinutes(3)));
            output.WriteLine($"{clock.Elapsed.TotalSeconds:F0} s: PostgreSQL on port {postgres.Port}, web {web.Pid}, workers {a.WorkerName} and {b.WorkerName}");
            using var client = web.Client(AdminKey);
            var processes = new[] { web, a, b };
            try
            {
                await RunScenarioAsync(client, [a, b], shared, clock);
            }
            catch
            {
                foreach (var p in processes) output.WriteLine($"--- {p.Name} (pid {p.Pid}) output:\n{Tail(p.Output(), 6000)}");
                throw;
            }
        }
        finally
        {
            TryDelete(shared);
        }
    }

    private async Task RunScenarioAsync(HttpClient client, ServiceProcess[] workers, string shared, Stopwatch clock)
    {
        var ids = await Api.UploadDemoAsync(client, Path.Combine(shared, "upload"));
        // Five pairs of identical runs (same seed): each run has a twin that must produce the same trajectory.
        var runIds = new List<Guid>();
        for (var i = 0; i < 10; i++)
        {
            runIds.Add(await Api.StartAsync(client, new
            {
                // The scan off: this test is about workers, and its timing reads ft's own progress steps.
                modelId = ids.Model, defense = "ft", parameters = new { epochs = Epochs, scan = false }, cleanDatasetId = ids.Clean, testDatasetId = ids.Test,
                backdoorTestDatasetId = ids.BackdoorTest, targetLabel = 0, seed = 1 + i / 2,
            }));
        }

        // The web process streams the events of a run that a worker process executes.
        var firstPoint = await FirstEventAsync(client, runIds[0], "point", TimeSpan.FromMinutes(3));
        Assert.Contains("\"point\"", firstPoint);

        var (killed, victim, childPid) = await KillAWorkerMidRunAsync(client, workers, clock);
        var survivor = workers.Single(w => w != killed);
        var killedRun = await Api.RunAsync(client, victim);
        Assert.True(killedRun.GetProperty("status").GetString() == "Running", $"the run should still be Running after its worker was killed: {killedRun}");

        // The killed worker's child (the run's own process) notices its parent is gone and stops.
        var orphanDeadline = DateTime.UtcNow.AddSeconds(30);
        while (Directory.Exists($"/proc/{childPid}") && DateTime.UtcNow < orphanDeadline) await Task.Delay(100);
        var orphanGoneBy = DateTimeOffset.UtcNow;
        Assert.False(Directory.Exists($"/proc/{childPid}"), $"the killed worker's child process {childPid} is still running");
        output.WriteLine($"{clock.Elapsed.TotalSeconds:F0} s: the orphaned child {childPid} had exited by {orphanGoneBy:HH:mm:ss.fff}");

        var deadline = DateTime.UtcNow.AddMinutes(10);
        JsonElement[] runs;
        while (true)
        {
            runs = await Api.RunsAsync(client);
            if (runs.Length == runIds.Count && runs.All(Api.Finished)) break;
            Assert.True(DateTime.UtcNow < deadline, "the runs did not finish: " + string.Join("\n", runs.Select(Summary)));
            await Task.Delay(500);
        }

        output.WriteLine($"{clock.Elapsed.TotalSeconds:F0} s: all finished");
        foreach (var run in runs) output.WriteLine(Summary(run));

        // The history shows each run exactly once, every one succeeded, computed on the CPU.
        Assert.Equal(runIds.Order(), runs.Select(r => r.GetProperty("id").GetGuid()).Order());
        Assert.All(runs, r => Assert.True(r.GetProperty("status").GetString() == "Succeeded", Summary(r)));
        Assert.All(runs, r => Assert.Equal("cpu", r.GetProperty("device").GetString()));

        // The killed run completed on the other worker as its second attempt; no other run was executed twice.
        var victimRun = runs.Single(r => r.GetProperty("id").GetGuid() == victim);
        Assert.Equal(2, victimRun.GetProperty("attempt").GetInt32());
        Assert.Equal(survivor.WorkerName, victimRun.GetProperty("worker").GetString());
        Assert.All(runs.Where(r => r.GetProperty("id").GetGuid() != victim), r => Assert.Equal(1, r.GetProperty("attempt").GetInt32()));

        // Both workers finished runs.
        foreach (var worker in workers)
        {
            Assert.Contains(runs, r => r.GetProperty("worker").GetString() == worker.WorkerName);
        }

        // The takeover is in the run's history, and it began only after the first attempt's process had stopped.
        var log = await client.GetStringAsync($"api/runs/{victim}/artifacts/log");
        var takeover = log.Split('\n').Single(l => l.Contains($"attempt 2 on worker {survivor.WorkerName}: worker {killed.WorkerName} stopped renewing its claim", StringComparison.Ordinal));
        var takenOverAt = DateTimeOffset.Parse(takeover[..takeover.IndexOf(' ')], CultureInfo.InvariantCulture);
        Assert.True(orphanGoneBy < takenOverAt, $"attempt 2 started at {takenOverAt:O}, before the first attempt's process was gone ({orphanGoneBy:O})");

        // Full trajectories, once: the taken-over run's equals its uninterrupted twin's, point for point.
        var twin = runIds[runIds.IndexOf(victim) ^ 1];
        var trajectory = await client.GetStringAsync($"api/runs/{victim}/trajectory");
        var twinTrajectory = await client.GetStringAsync($"api/runs/{twin}/trajectory");
        using (var points = JsonDocument.Parse(trajectory))
        {
            Assert.True(points.RootElement.GetArrayLength() > Epochs / 2, $"a full trajectory has a point per epoch: {points.RootElement.GetArrayLength()}");
        }

        Assert.Equal(twinTrajectory, trajectory);
        foreach (var id in runIds)
        {
            using var points = JsonDocument.Parse(await client.GetStringAsync($"api/runs/{id}/trajectory"));
            Assert.True(points.RootElement.GetArrayLength() > 0, $"run {id} has no trajectory");
        }
    }

    /// <summary>Waits until a worker that has already finished a run is early in its next one, then kills it with SIGKILL.</summary>
    private async Task<(ServiceProcess Killed, Guid Run, int ChildPid)> KillAWorkerMidRunAsync(HttpClient client, ServiceProcess[] workers, Stopwatch clock)
    {
        var deadline = DateTime.UtcNow.AddMinutes(8);
        while (DateTime.UtcNow < deadline)
        {
            var runs = await Api.RunsAsync(client);
            foreach (var worker in workers)
            {
                var mine = runs.Where(r => r.GetProperty("worker").GetString() == worker.WorkerName).ToArray();
                // ft reports 0.5 after its hold-out step, then 0.5 + 0.5 × epoch / epochs: caught in its first half of fine-tuning.
                var current = mine.FirstOrDefault(r => r.GetProperty("status").GetString() == "Running"
                    && r.GetProperty("progress").GetDouble() is > 0.5 and < 0.75);
                if (current.ValueKind == JsonValueKind.Undefined || !mine.Any(r => r.GetProperty("status").GetString() == "Succeeded")) continue;

                var id = current.GetProperty("id").GetGuid();
                var log = await client.GetStringAsync($"api/runs/{id}/artifacts/log");
                var pid = int.Parse(ChildPid().Matches(log)[^1].Groups[1].Value, CultureInfo.InvariantCulture);
                worker.KillHard();
                output.WriteLine($"{clock.Elapsed.TotalSeconds:F0} s: killed {worker.Name} ({worker.WorkerName}) with SIGKILL during run {id} " +
                    $"at progress {current.GetProperty("progress").GetDouble():P0}; its child process is {pid}");
                return (worker, id, pid);
            }

            Assert.False(runs.Length > 0 && runs.All(Api.Finished), "every run finished before a worker could be caught mid-run");
            await Task.Delay(150);
        }

        throw new TimeoutException("no worker was caught mid-run");
    }

    /// <summary>Reads the run's server-sent events until one of the given type arrives; returns its data.</summary>
    private static async Task<string> FirstEventAsync(HttpClient client, Guid runId, string type, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        using var response = await client.GetAsync($"api/runs/{runId}/events", HttpCompletionOption.ResponseHeadersRead, cts.Token);
        response.EnsureSuccessStatusCode();
        await using var stream = await response.Content.ReadAsStreamAsync(cts.Token);
        await foreach (var item in SseParser.Create(stream).EnumerateAsync(cts.Token))
        {
            if (item.EventType == type) return item.Data;
        }

        throw new InvalidOperationException($"the event stream of run {runId} ended without a '{type}' event");
    }

    private static Dictionary<string, string> Settings(PostgresServer postgres, string shared) => new()
    {
        ["WebDefense__Storage"] = "postgres",
        ["ConnectionStrings__WebDefense"] = postgres.ConnectionString,
        ["WebDefense__DataDirectory"] = Path.Combine(shared, "data"),
        ["WebDefense__Device"] = "auto",
        ["WebDefense__TorchThreads"] = "1",
        ["WebDefense__WorkerCount"] = "1",
        // Fast failover for the test: a dead worker's claim lapses after 10 s, its job comes back after 15 s.
        ["WebDefense__RunLeaseSeconds"] = "10",
        ["WebDefense__InvisibilityTimeoutSeconds"] = "15",
        ["WebDefense__QueuePollSeconds"] = "1",
        ["WebDefense__Bootstrap__AdminApiKey"] = AdminKey,
        ["WebDefense__Bootstrap__AdminPassword"] = "Admin-pass-123!",
        ["WebDefense__Bootstrap__SeedDemo"] = "false",
    };

    private static Dictionary<string, string> With(Dictionary<string, string> settings, string role) =>
        new(settings) { ["WebDefense__Role"] = role };

    private static string Summary(JsonElement r) =>
        $"{r.GetProperty("id").GetGuid():N} seed {r.GetProperty("seed").GetInt32()} {r.GetProperty("status").GetString()} " +
        $"attempt {r.GetProperty("attempt").GetInt32()} on {r.GetProperty("worker")} device {r.GetProperty("device")} " +
        $"{(r.TryGetProperty("wallSeconds", out var w) && w.ValueKind == JsonValueKind.Number ? w.GetDouble().ToString("F1", CultureInfo.InvariantCulture) + " s" : "")} {r.GetProperty("error")}";

    private static string Tail(string text, int chars) => text.Length <= chars ? text : "…" + text[^chars..];

    private static void TryDelete(string directory)
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
