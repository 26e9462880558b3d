using System.Text.Json;
using WebDefense.Core.Evaluation;
using WebDefense.Core.Models;
using WebDefense.Core.Runs;
using WebDefense.Core.Runtime;
using Xunit.Abstractions;

namespace WebDefense.Worker.Tests;

[Collection(WorkerCollection.Name)]
public class RunWorkerTests(WorkerFixture data, ITestOutputHelper output)
{
    private static List<RunEvent> Events(out Action<RunEvent> emit)
    {
        var list = new List<RunEvent>();
        emit = e =>
        {
            lock (list) list.Add(e);
        };
        return list;
    }

    [Fact]
    public void Rnp_runs_in_process_reports_events_in_order_and_writes_a_purified_model_in_the_uploaded_format()
    {
        Assert.True(data.Original.Asr > 0.8, $"the suspect model should be backdoored: ASR {data.Original.Asr:P1}");
        // "auto" is resolved by the worker (cuda:0 where libtorch sees a GPU), and the run records what it resolved.
        var spec = data.Spec("rnp", new() { ["recovering_epochs"] = 5, ["unlearning_epochs"] = 10 }, withTrigger: true) with { Device = "auto" };
        var events = Events(out var emit);

        var code = RunWorker.Execute(spec, emit, CancellationToken.None);

        Assert.True(code == 0, string.Join("\n", events.OfType<FailedEvent>().Select(f => f.Error)));
        var completed = Assert.IsType<CompletedEvent>(events[^1]);
        Assert.IsType<LogEvent>(events[0]);
        Assert.Contains($"worker process {Environment.ProcessId} started", ((LogEvent)events[0]).Message);
        var steps = events.OfType<StepEvent>().ToList();
        Assert.NotEmpty(steps);
        Assert.Equal(Enumerable.Range(0, steps.Count), steps.Select(s => s.Index));
        Assert.Contains(events, e => e is PointEvent);
        var progress = events.OfType<ProgressEvent>().Select(p => p.Progress).ToList();
        Assert.All(progress, p => Assert.InRange(p, 0, 1));
        Assert.Equal(progress.Order(), progress); // overall progress never goes back
        var before = events.FindIndex(e => e is MetricsEvent { Stage: "before" });
        var after = events.FindIndex(e => e is MetricsEvent { Stage: "after" });
        Assert.True(before > events.FindLastIndex(e => e is StepEvent) && after > before);

        var expectedDevice = TorchRuntime.EnsureAvailable().CudaAvailable ? "cuda:0" : "cpu";
        Assert.Equal(expectedDevice, completed.Device);
        Assert.Contains(events.OfType<LogEvent>(), l => l.Message.Contains($"resolves to {expectedDevice}; the run computes there", StringComparison.Ordinal));
        Assert.Equal("model.pt", completed.ModelFile);
        foreach (var file in new[] { "model.pt", "metrics.json", "metrics.csv", "trajectory.json", "log.txt" })
        {
            Assert.True(File.Exists(Path.Combine(spec.OutputDirectory, file)), file);
        }

        Assert.Empty(Directory.GetFiles(spec.OutputDirectory, "*.tmp"));
        var csv = File.ReadAllLines(Path.Combine(spec.OutputDirectory, "metrics.csv"));
        Assert.Equal("phase,x,x_label,val_acc,val_asr,val_ra,loss,note", csv[0]);
        Assert.Equal(events.OfType<PointEvent>().Count(), csv.Length - 1);
        using var metrics = JsonDocument.Parse(File.ReadAllText(Path.Combine(spec.OutputDirectory, "metrics.json")));
        Assert.Equal(1, metrics.RootElement.GetProperty("seed").GetInt32());
        Assert.Equal("rnp", metrics.RootElement.GetProperty("defense").GetString());
        Assert.True(metrics.RootElement.GetProperty("timings").GetProperty("wallSeconds").GetDouble() > 0);
        Assert.Equal(5, metrics.RootElement.GetProperty("resolvedParameters").GetProperty("recovering_epochs").GetInt32());
        Assert.Contains("step 1/", File.ReadAllText(Path.Combine(spec.OutputDirectory, "log.txt")));

        using var purified = ModelLoader.Load(Path.Combine(spec.OutputDirectory, "model.pt"), WorkerFixture.Declaration);
        Assert.Equal(ModelFileFormat.PyTorchStateDict, purified.Format);
        var m = Evaluator.Evaluate(purified.Classifier, data.Test, data.BackdoorTest, 0);
        output.WriteLine($"RNP: ACC {data.Original.Acc:P1} → {m.Acc:P1}, ASR {data.Original.Asr:P1} → {m.Asr:P1}; reported after {completed.After}");
        // The artifact is the model the worker measured, and "before" is the uploaded model (the Core integration
        // tests check what the defenses achieve; these small parameters only exercise the plumbing).
        Assert.Equal(completed.After!.Asr!.Value, m.Asr!.Value, 6);
        Assert.Equal(completed.After.Acc, m.Acc, 6);
        Assert.Equal(data.Original.Asr!.Value, completed.Before!.Asr!.Value, 6);
    }

    [Fact]
    public void Grad_prune_with_a_trigger_spec_lowers_the_attack_success_rate()
    {
        var spec = data.Spec("grad-prune", new() { ["samples_per_class"] = 10, ["max_tuning_epochs"] = 2 });
        var events = Events(out var emit);

        var code = RunWorker.Execute(spec, emit, CancellationToken.None);

        Assert.True(code == 0, string.Join("\n", events.OfType<FailedEvent>().Select(f => f.Error)));
        var completed = Assert.IsType<CompletedEvent>(events[^1]);
        Assert.Contains(events, e => e is LogEvent l && l.Message.Contains("triggered copies of the clean data", StringComparison.Ordinal));
        using var purified = ModelLoader.Load(Path.Combine(spec.OutputDirectory, completed.ModelFile!), WorkerFixture.Declaration);
        var m = Evaluator.Evaluate(purified.Classifier, data.Test, data.BackdoorTest, 0);
        output.WriteLine($"Grad-Prune: ACC {data.Original.Acc:P1} → {m.Acc:P1}, ASR {data.Original.Asr:P1} → {m.Asr:P1}, RA → {m.Ra:P1}");
        Assert.Equal(completed.After!.Asr!.Value, m.Asr!.Value, 6);
        Assert.Equal(data.Original.Asr!.Value, completed.Before!.Asr!.Value, 6);
    }

    [Theory]
    [InlineData("tsbd")]
    [InlineData("ft")]
    [InlineData("fp")]
    [InlineData("nad")]
    [InlineData("clp")]
    [InlineData("anp")]
    [InlineData("ft-sam")]
    [InlineData("nc")]
    public void Every_baseline_runs_as_a_worker_job_and_its_artifact_is_the_model_it_measured(string defense)
    {
        // Small schedules: the Core tests check what each defense achieves; this checks the job path for each.
        Dictionary<string, object> parameters = defense switch
        {
            "tsbd" => new() { ["unlearning_epochs"] = 3, ["ft_epochs"] = 1, ["neuron_ratios"] = "0.05,0.1,0.2" },
            "ft" or "ft-sam" or "nc" => new() { ["epochs"] = 2 },
            "fp" => new() { ["epochs"] = 1 },
            "nad" => new() { ["te_epochs"] = 1, ["epochs"] = 1 },
            "anp" => new() { ["nb_iter"] = 20 },
            _ => new(),
        };
        var spec = data.Spec(defense, parameters, withTrigger: true);
        var events = Events(out var emit);

        var code = RunWorker.Execute(spec, emit, CancellationToken.None);

        Assert.True(code == 0, string.Join("\n", events.OfType<FailedEvent>().Select(f => f.Error)));
        var completed = Assert.IsType<CompletedEvent>(events[^1]);
        Assert.Contains(events, e => e is PointEvent);
        using var metrics = JsonDocument.Parse(File.ReadAllText(Path.Combine(spec.OutputDirectory, "metrics.json")));
        Assert.Equal(defense, metrics.RootElement.GetProperty("defense").GetString());
        Assert.False(string.IsNullOrEmpty(metrics.RootElement.GetProperty("chosen").GetProperty("rule").GetString()));
        using var purified = ModelLoader.Load(Path.Combine(spec.OutputDirectory, completed.ModelFile!), WorkerFixture.Declaration);
        var m = Evaluator.Evaluate(purified.Classifier, data.Test, data.BackdoorTest, 0);
        output.WriteLine($"{defense}: ACC {data.Original.Acc:P1} → {m.Acc:P1}, ASR {data.Original.Asr:P1} → {m.Asr:P1}");
        Assert.Equal(completed.After!.Asr!.Value, m.Asr!.Value, 6);
        Assert.Equal(completed.After.Acc, m.Acc, 6);
    }

    [Fact]
    public void Grad_prune_without_trigger_or_samples_is_a_user_error()
    {
        // With the scan off (on, it would rebuild the trigger: see the server's ScanTests).
        var spec = data.Spec("grad-prune", new() { ["scan"] = false }, withTrigger: false);
        var events = Events(out var emit);

        var code = RunWorker.Execute(spec, emit, CancellationToken.None);

        Assert.Equal(RunWorker.ExitUserError, code);
        var failed = Assert.IsType<FailedEvent>(events[^1]);
        Assert.True(failed.UserError);
        Assert.Contains("needs backdoor samples", failed.Error);
        Assert.DoesNotContain(events, e => e is CompletedEvent);
        Assert.Contains("needs backdoor samples", File.ReadAllText(Path.Combine(spec.OutputDirectory, "log.txt")));
    }

    [Fact]
    public void A_clean_set_of_the_wrong_shape_is_a_user_error_naming_both_shapes()
    {
        var small = Path.Combine(data.Root, "small-" + Guid.NewGuid().ToString("N") + ".zip");
        using (var cropped = new WebDefense.Core.Data.ImageDataset(data.Test.Images.narrow(2, 0, 14).narrow(3, 0, 14).contiguous(), data.Test.Labels.clone()))
        {
            WorkerFixture.WriteIdxZip(cropped, small);
        }

        var spec = data.Spec("rnp") with { CleanData = new RunDatasetInput { Path = small, FileName = "small.zip" } };
        var events = Events(out var emit);

        var code = RunWorker.Execute(spec, emit, CancellationToken.None);

        Assert.Equal(RunWorker.ExitUserError, code);
        var failed = Assert.IsType<FailedEvent>(events[^1]);
        Assert.True(failed.UserError, failed.Error);
        Assert.Contains("1×14×14", failed.Error);
        Assert.Contains("1×28×28", failed.Error);
        output.WriteLine(failed.Error);
    }

    [Fact]
    public void Cancellation_returns_3()
    {
        using var cts = new CancellationTokenSource();
        var spec = data.Spec("rnp", new() { ["recovering_epochs"] = 200, ["unlearning_epochs"] = 200 });
        var code = RunWorker.Execute(spec, e =>
        {
            if (e is PointEvent) cts.Cancel();
        }, cts.Token);
        Assert.Equal(RunWorker.ExitCancelled, code);
    }

    [Fact]
    public void Events_round_trip_through_the_json_line_format()
    {
        var line = RunEventJson.ToLine(new FailedEvent("boom\nsecond line", true));
        Assert.DoesNotContain('\n', line);
        Assert.StartsWith("{\"type\":\"failed\"", line);
        Assert.Equal(new FailedEvent("boom\nsecond line", true), RunEventJson.TryParse(line));
        Assert.Null(RunEventJson.TryParse("not json"));
        Assert.Null(RunEventJson.TryParse("{\"type\":\"nope\"}"));
    }
}
