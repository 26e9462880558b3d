using WebDefense.Core.Evaluation;
using System.Diagnostics;
using System.Text.RegularExpressions;
using WebDefense.Core.Models;
using WebDefense.Core.Runs;
using WebDefense.Server.Jobs;
using Xunit.Abstractions;

namespace WebDefense.Worker.Tests;

/// <summary>The executor against real child processes (<c>dotnet WebDefense.Server.dll worker --spec …</c>).</summary>
[Collection(WorkerCollection.Name)]
public partial class ProcessRunExecutorTests(WorkerFixture data, ITestOutputHelper output)
{
    private readonly ProcessRunExecutor _executor = new(new ProcessRunExecutorOptions { WorkerTimeout = TimeSpan.FromMinutes(3) }, output.WriteLine);

    [GeneratedRegex(@"worker process (\d+) started")]
    private static partial Regex PidPattern();

    private static int? Pid(RunEvent e) => e is LogEvent l && PidPattern().Match(l.Message) is { Success: true } m ? int.Parse(m.Groups[1].Value) : null;

    /// <summary>Alive and not a zombie.</summary>
    private static bool Alive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].First() != 'Z';
        }
        catch (IOException)
        {
            return false;
        }
    }

    [Fact]
    public async Task A_run_in_a_child_process_streams_events_and_succeeds()
    {
        var spec = data.Spec("grad-prune", new() { ["samples_per_class"] = 10, ["max_tuning_epochs"] = 1 });
        var events = new List<RunEvent>();
        var watch = Stopwatch.StartNew();

        var result = await _executor.ExecuteAsync(spec, e => { events.Add(e); return Task.CompletedTask; }, CancellationToken.None);

        output.WriteLine($"{watch.Elapsed.TotalSeconds:F1} s, {events.Count} events; {result.Error}");
        Assert.True(result.Succeeded, result.Error);
        Assert.False(result.Cancelled);
        Assert.NotNull(result.Completed);
        Assert.Equal(result.Completed, events[^1]);
        var pid = events.Select(Pid).First(p => p is not null);
        Assert.NotEqual(Environment.ProcessId, pid);
        Assert.Contains(events, e => e is StepEvent);
        Assert.Contains(events, e => e is PointEvent);
        Assert.Contains(events, e => e is MetricsEvent { Stage: "after" });
        Assert.True(File.Exists(Path.Combine(spec.OutputDirectory, "spec.json")));
        using var purified = ModelLoader.Load(Path.Combine(spec.OutputDirectory, result.Completed!.ModelFile!), WorkerFixture.Declaration);
        output.WriteLine($"child: ASR {result.Completed.Before!.Asr:P1} → {result.Completed.After!.Asr:P1}");
        Assert.Equal(data.Original.Asr!.Value, result.Completed.Before.Asr!.Value, 6);
        Assert.Equal(result.Completed.After.Asr!.Value, Evaluator.Evaluate(purified.Classifier, data.Test, data.BackdoorTest, 0).Asr!.Value, 6);
    }

    [Fact]
    public async Task The_worker_computes_at_the_configured_nice_value_on_every_thread()
    {
        if (!OperatingSystem.IsLinux()) return;
        var executor = new ProcessRunExecutor(new ProcessRunExecutorOptions { WorkerTimeout = TimeSpan.FromMinutes(3), Nice = 10 }, output.WriteLine);
        var spec = data.Spec("rnp", new() { ["recovering_epochs"] = 200, ["unlearning_epochs"] = 200 });
        using var cts = new CancellationTokenSource();
        int? pid = null;
        var nices = new List<int>();
        await executor.ExecuteAsync(spec, e =>
        {
            pid ??= Pid(e);
            if (e is StepEvent && !cts.IsCancellationRequested && pid is { } p)
            {
                // Field 19 of /proc/PID/task/TID/stat is the thread's nice value; the run computes by now (libtorch's threads exist).
                foreach (var task in Directory.EnumerateDirectories($"/proc/{p}/task"))
                {
                    var stat = File.ReadAllText(Path.Combine(task, "stat"));
                    nices.Add(int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[16], System.Globalization.CultureInfo.InvariantCulture));
                }

                cts.Cancel();
            }

            return Task.CompletedTask;
        }, cts.Token);

        Assert.NotEmpty(nices);
        Assert.All(nices, n => Assert.Equal(10, n));
        Assert.Equal(0, int.Parse(File.ReadAllText("/proc/self/stat").Split(')')[1].Trim().Split(' ')[16], System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task Cancelling_kills_the_child_promptly()
    {
        var spec = data.Spec("rnp", new() { ["recovering_epochs"] = 200, ["unlearning_epochs"] = 200 });
        using var cts = new CancellationTokenSource();
        int? pid = null;
        var cancelledAt = Stopwatch.StartNew();

        var result = await _executor.ExecuteAsync(spec, e =>
        {
            pid ??= Pid(e);
            if (e is StepEvent && !cts.IsCancellationRequested)
            {
                cancelledAt.Restart();
                cts.Cancel();
            }

            return Task.CompletedTask;
        }, cts.Token);

        output.WriteLine($"returned {cancelledAt.Elapsed.TotalSeconds:F2} s after cancelling; {result}");
        Assert.True(result.Cancelled);
        Assert.False(result.Succeeded);
        Assert.NotNull(pid);
        Assert.True(cancelledAt.Elapsed < TimeSpan.FromSeconds(5), $"{cancelledAt.Elapsed}");
        Assert.False(Alive(pid!.Value), $"worker {pid} still running");
    }

    [Fact]
    public async Task A_child_killed_by_SIGKILL_fails_the_run_with_the_signal_named()
    {
        var spec = data.Spec("rnp", new() { ["recovering_epochs"] = 200, ["unlearning_epochs"] = 200 });
        int? pid = null;
        var killed = false;

        var result = await _executor.ExecuteAsync(spec, e =>
        {
            pid ??= Pid(e);
            if (e is StepEvent && pid is { } p && !killed)
            {
                killed = true;
                Process.GetProcessById(p).Kill(); // SIGKILL on Unix
            }

            return Task.CompletedTask;
        }, CancellationToken.None);

        output.WriteLine(result.Error);
        Assert.True(killed);
        Assert.False(result.Succeeded);
        Assert.False(result.Cancelled);
        Assert.Contains("killed by signal SIGKILL", result.Error);
        Assert.False(Alive(pid!.Value));
    }

    [Fact]
    public async Task A_corrupt_model_file_fails_with_the_loaders_message()
    {
        var bad = Path.Combine(data.Root, "corrupt-" + Guid.NewGuid().ToString("N") + ".pt");
        await File.WriteAllBytesAsync(bad, [.. "PK\u0003\u0004 this is not a checkpoint"u8.ToArray(), .. new byte[64]]);
        var expected = Assert.ThrowsAny<ModelFileException>(() => ModelLoader.Load(bad, WorkerFixture.Declaration)).Message;
        var events = new List<RunEvent>();

        var result = await _executor.ExecuteAsync(data.Spec("rnp", modelPath: bad), e => { events.Add(e); return Task.CompletedTask; }, CancellationToken.None);

        output.WriteLine(result.Error);
        Assert.False(result.Succeeded);
        Assert.Equal(expected, result.Error);
        Assert.True(Assert.IsType<FailedEvent>(events[^1]).UserError);
    }
}
