using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;

namespace WebDefense.Server.Tests;

/// <summary>kill -9 of a run's worker process: the run is queued once more, as after a killed server; a second crash fails it with the reason.</summary>
public class WorkerCrashTests
{
    [Fact]
    public async Task A_crashed_worker_process_is_retried_once_then_the_run_fails_with_the_reason()
    {
        if (!OperatingSystem.IsLinux()) return; // finds the worker process through /proc
        using var host = new ServiceHost(ServiceHost.NewDataDirectory());
        var client = host.Client();
        var ids = await Api.SetUpAsync(client);
        var runId = await Api.StartAsync(client, new
        {
            modelId = ids.Model, defense = "ft", cleanDatasetId = ids.Clean, seed = 1,
            parameters = new Dictionary<string, object> { ["epochs"] = 1000, ["scan"] = false },
        });

        var first = await WorkerProcessAsync(runId, attempt: 1);
        first.Kill();
        // The same run comes back in a new worker process (attempt 2), not as a failure.
        var second = await WorkerProcessAsync(runId, attempt: 2);
        var retried = await Api.RunAsync(client, runId);
        Assert.Equal("Running", retried.GetProperty("status").GetString());
        Assert.Equal(2, retried.GetProperty("attempt").GetInt32());

        second.Kill();
        var failed = await Api.WaitAsync(client, runId, Api.Finished, seconds: 60);
        Assert.Equal("Failed", failed.GetProperty("status").GetString());
        var error = failed.GetProperty("error").GetString();
        Assert.Contains("killed by signal SIGKILL (9)", error);
        Assert.Contains("again, after 1 retry", error);
    }

    /// <summary>The child process executing the run's attempt (its spec lies in the attempt's own work directory).</summary>
    private static async Task<Process> WorkerProcessAsync(Guid runId, int attempt)
    {
        var marker = $"{runId:N}-{attempt}";
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (DateTime.UtcNow < deadline)
        {
            foreach (var dir in Directory.EnumerateDirectories("/proc"))
            {
                if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
                string cmdline;
                try
                {
                    cmdline = (await File.ReadAllTextAsync(Path.Combine(dir, "cmdline"))).Replace('\0', ' ');
                }
                catch (IOException)
                {
                    continue;
                }
                catch (UnauthorizedAccessException)
                {
                    continue;
                }

                if (cmdline.Contains(" worker ", StringComparison.Ordinal) && cmdline.Contains(marker, StringComparison.Ordinal)) return Process.GetProcessById(pid);
            }

            await Task.Delay(200);
        }

        throw new TimeoutException($"no worker process for {marker} within 120 s");
    }
}
