using System.Globalization;
using System.Text.Json;
using WebDefense.Core.Data;
using WebDefense.Core.Data.Triggers;
using WebDefense.Core.Evaluation;
using WebDefense.Core.Models;
using WebDefense.Core.Runs;
using Xunit.Abstractions;

namespace WebDefense.Worker.Tests;

/// <summary>
/// The training-time path of the worker (AdvrBD): no model file, an architecture plus a poisoned-train .npz (with the
/// attack lab's poison flags) in, the trained model, the suspected samples and the metrics out. Tiny schedules: the Core
/// tests check what the defense achieves; this checks the job path.
/// </summary>
[Collection(WorkerCollection.Name)]
public class TrainingRunWorkerTests(WorkerFixture data, ITestOutputHelper output)
{
    private const int TrainCount = 1200;

    private RunSpec Spec(string poisonedTrain, Dictionary<string, object>? parameters = null) => data.Spec("advrbd", parameters ?? new()
    {
        ["warmup_epochs"] = 1, ["iterations"] = 1, ["pgd_steps"] = 1, ["epochs"] = 1, ["unlearn_max_epochs"] = 1, ["batch_size"] = 64,
    }) with
    {
        Model = new RunModelInput { Architecture = "smallcnn", NumClasses = 10, InputShape = [1, 28, 28], Mean = [0f], Std = [1f] },
        CleanData = null,
        PoisonedTrain = new RunDatasetInput { Path = poisonedTrain, FileName = "poisoned.npz" },
    };

    /// <summary>The first rows of the Fashion-MNIST test file poisoned by BadNets (10%, target 0), as an .npz with a poisoned array.</summary>
    private string WritePoisonedTrain(bool withFlags)
    {
        using var all = IdxReader.Read(Path.Combine(WorkerFixture.FashionMnistDir, "t10k-images-idx3-ubyte.gz"), Path.Combine(WorkerFixture.FashionMnistDir, "t10k-labels-idx1-ubyte.gz"));
        using var rows = all.Subset(Enumerable.Range(0, TrainCount).Select(i => (long)i).ToArray());
        using var poisoned = Poisoning.Poison(rows, PatchTrigger.BadNets, 0, 0.1, cleanLabel: false, seed: 2);
        var path = Path.Combine(data.Root, $"poisoned-{Guid.NewGuid():N}.npz");
        NpzWriter.Write(poisoned.Data, path, withFlags ? poisoned.PoisonFlags() : null);
        return path;
    }

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
    public void Advrbd_trains_from_a_poisoned_set_and_writes_the_model_the_suspects_and_the_metrics()
    {
        var spec = Spec(WritePoisonedTrain(withFlags: true));
        var events = Events(out var emit);

        var code = RunWorker.Execute(spec, emit, CancellationToken.None);

        Assert.True(code == 0, string.Join("\n", events.OfType<FailedEvent>().Select(f => f.Error)));
        var completed = Assert.IsType<CompletedEvent>(events[^1]);
        var steps = events.OfType<StepEvent>().ToList();
        Assert.Equal(Enumerable.Range(0, 7), steps.Select(s => s.Index));
        Assert.Equal("undefended comparison", steps[^1].Step);
        var progress = events.OfType<ProgressEvent>().Select(p => p.Progress).ToList();
        Assert.Equal(progress.Order(), progress);
        Assert.Contains(events, e => e is PointEvent { Point.Phase: "enhance" });
        Assert.Contains(events, e => e is LogEvent l && l.Message.Contains("120 of 1200 samples are poisoned", StringComparison.Ordinal));
        Assert.NotNull(completed.Before);
        Assert.NotNull(completed.After!.Asr);

        foreach (var file in new[] { "model.pt", RunWorker.SuspectedSamplesFile, "metrics.json", "metrics.csv", "trajectory.json", "log.txt" })
        {
            Assert.True(File.Exists(Path.Combine(spec.OutputDirectory, file)), file);
        }

        var csv = File.ReadAllLines(Path.Combine(spec.OutputDirectory, RunWorker.SuspectedSamplesFile));
        Assert.Equal("index,label,suspected,suspicion,consistency_kl,poisoned", csv[0]);
        Assert.Equal(TrainCount + 1, csv.Length);
        var cells = csv.Skip(1).Select(l => l.Split(',')).ToList();
        Assert.Equal(Enumerable.Range(0, TrainCount).Select(i => i.ToString(CultureInfo.InvariantCulture)), cells.Select(c => c[0]));
        Assert.Equal(120, cells.Count(c => c[5] == "1"));
        var suspected = cells.Count(c => c[2] == "1");
        var caught = cells.Count(c => c[2] == "1" && c[5] == "1");
        Assert.All(cells, c => Assert.InRange(double.Parse(c[3], CultureInfo.InvariantCulture), 0, 1));

        using var metrics = JsonDocument.Parse(File.ReadAllText(Path.Combine(spec.OutputDirectory, "metrics.json")));
        var root = metrics.RootElement;
        Assert.Equal("training-time", root.GetProperty("kind").GetString());
        Assert.Equal(suspected, root.GetProperty("suspected").GetInt32());
        Assert.Equal(caught / 120.0, root.GetProperty("detection").GetProperty("recall").GetDouble(), 9);
        Assert.Equal(suspected == 0 ? 0 : (double)caught / suspected, root.GetProperty("detection").GetProperty("precision").GetDouble(), 9);
        Assert.True(root.GetProperty("timings").GetProperty("undefendedSeconds").GetDouble() > 0);
        Assert.Contains("likely_clean", File.ReadLines(Path.Combine(spec.OutputDirectory, "metrics.csv")).First());

        using var model = ModelLoader.Load(Path.Combine(spec.OutputDirectory, completed.ModelFile!), WorkerFixture.Declaration);
        var m = Evaluator.Evaluate(model.Classifier, data.Test, data.BackdoorTest, 0);
        output.WriteLine($"AdvrBD (tiny schedule): {suspected} suspected, {caught} of 120 poisoned; undefended {completed.Before} → {m}");
        Assert.Equal(completed.After.Acc, m.Acc, 6);
        Assert.Equal(completed.After.Asr!.Value, m.Asr!.Value, 6);
    }

    [Fact]
    public void Without_flags_there_is_no_detection_score_and_the_csv_has_no_truth_column()
    {
        var spec = Spec(WritePoisonedTrain(withFlags: false)) with { TestSet = null, TriggerJson = null, TargetLabel = null };
        var events = Events(out var emit);

        var code = RunWorker.Execute(spec, emit, CancellationToken.None);

        Assert.True(code == 0, string.Join("\n", events.OfType<FailedEvent>().Select(f => f.Error)));
        var completed = Assert.IsType<CompletedEvent>(events[^1]);
        Assert.Null(completed.Before);
        Assert.Null(completed.After);
        Assert.DoesNotContain(events, e => e is StepEvent { Step: "undefended comparison" });
        Assert.Equal("index,label,suspected,suspicion,consistency_kl", File.ReadLines(Path.Combine(spec.OutputDirectory, RunWorker.SuspectedSamplesFile)).First());
        using var metrics = JsonDocument.Parse(File.ReadAllText(Path.Combine(spec.OutputDirectory, "metrics.json")));
        Assert.Equal(JsonValueKind.Null, metrics.RootElement.GetProperty("detection").ValueKind);
        Assert.Equal(JsonValueKind.Null, metrics.RootElement.GetProperty("before").ValueKind);
    }

    [Fact]
    public void Missing_inputs_of_either_kind_of_run_are_user_errors()
    {
        (int Code, FailedEvent? Failed) Run(RunSpec spec)
        {
            var events = Events(out var emit);
            var code = RunWorker.Execute(spec, emit, CancellationToken.None);
            return (code, events.OfType<FailedEvent>().SingleOrDefault());
        }

        var noTrain = Run(Spec("unused") with { PoisonedTrain = null });
        Assert.Equal(RunWorker.ExitUserError, noTrain.Code);
        Assert.Contains("needs a poisoned-train data set", noTrain.Failed!.Error);

        var withModelFile = Run(Spec("unused") with { Model = data.Spec("rnp").Model });
        Assert.Equal(RunWorker.ExitUserError, withModelFile.Code);
        Assert.Contains("takes an architecture, not a model file", withModelFile.Failed!.Error);

        var noModelFile = Run(data.Spec("rnp") with { Model = data.Spec("rnp").Model with { Path = null } });
        Assert.Equal(RunWorker.ExitUserError, noModelFile.Code);
        Assert.Contains("needs a model file", noModelFile.Failed!.Error);
    }
}
