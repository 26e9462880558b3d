using WebDefense.Core.Data;
using WebDefense.Core.Data.Triggers;
using WebDefense.Core.Defenses;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Evaluation;
using WebDefense.Core.Models;
using WebDefense.Core.Tests.Data;
using WebDefense.Core.Training;
using Xunit.Abstractions;

namespace WebDefense.Core.Tests.Defenses;

/// <summary>
/// Real Fashion-MNIST: the first rows of the test file are the untrusted training set, poisoned by our attack lab's
/// BadNets (10%, target 0); the last 2,000 rows (with the trigger, for ASR) measure the result.
/// </summary>
public sealed class PoisonedFashionMnist : IDisposable
{
    public const int TrainCount = 3000;

    public PoisonedFashionMnist()
    {
        using var all = TestData.FashionMnistTest();
        using var train = all.Subset(Enumerable.Range(0, TrainCount).Select(i => (long)i).ToArray());
        Poisoned = Poisoning.Poison(train, PatchTrigger.BadNets, 0, 0.1, cleanLabel: false, seed: 4);
        Test = all.Subset(Enumerable.Range(8000, 2000).Select(i => (long)i).ToArray());
        BackdoorTest = BackdoorTestSet.Build(Test, PatchTrigger.BadNets, 0).Data;
    }

    public PoisonedDataset Poisoned { get; }
    public ImageDataset Test { get; }
    public ImageDataset BackdoorTest { get; }

    public TrainingDefenseRequest Request(Dictionary<string, object> parameters, int seed = 0, ImageDataset? train = null, PoisonTruth? truth = null) => new()
    {
        Defense = new AdvrBdDefense(),
        Architecture = "smallcnn",
        NumClasses = 10,
        Input = InputSpec.Grey28,
        Train = train ?? Poisoned.Data,
        Truth = train is null ? new PoisonTruth(Poisoned.PoisonFlags()) : truth,
        Parameters = parameters,
        Seed = seed,
        TestSet = Test,
        BackdoorTestSet = BackdoorTest,
        TargetLabel = 0,
    };

    public void Dispose()
    {
        Poisoned.Dispose();
        Test.Dispose();
        BackdoorTest.Dispose();
    }
}

/// <summary>
/// Runs alone: model initialisation draws from torch's process-wide generator, which tests running in parallel would
/// also draw from between the runner's seeding and a model's creation.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SeededTorchCollection
{
    public const string Name = "seeded torch, not in parallel";
}

[Collection(SeededTorchCollection.Name)]
public class AdvrBdDefenseTests(PoisonedFashionMnist data, ITestOutputHelper output) : IClassFixture<PoisonedFashionMnist>
{
    /// <summary>Small schedules for 3,000 images: batch 64 gives the backdoor enough steps to be learned by plain training.</summary>
    private static Dictionary<string, object> Fast() => new()
    {
        ["warmup_epochs"] = 6, ["iterations"] = 2, ["pgd_steps"] = 2, ["epochs"] = 6, ["batch_size"] = 64, ["unlearn_max_epochs"] = 3,
        ["unlearn_lr"] = 0.005,
    };

    private sealed class Recorder : IDefenseObserver
    {
        public List<(int Index, int Count, string Step)> Steps { get; } = [];
        public List<TrajectoryPoint> Points { get; } = [];
        public void StepStarted(int index, int count, string step) => Steps.Add((index, count, step));
        public void Progress(double fractionOfStep, string message) { }
        public void Point(TrajectoryPoint point) => Points.Add(point);
        public void Log(string message) { }
    }

    [Fact]
    public void Finds_the_poisoned_samples_and_trains_a_model_without_the_backdoor()
    {
        var observer = new Recorder();
        using var result = TrainingDefenseRunner.Run(data.Request(Fast()) with { Observer = observer });

        var undefended = result.Undefended!;
        var after = result.After!;
        var detection = result.Detection!;
        output.WriteLine($"recall {detection.Recall:P1} precision {detection.Precision:P1}; ACC {undefended.Acc:P1} → {after.Acc:P1}, ASR {undefended.Asr:P1} → {after.Asr:P1}; {result.WallTime.TotalSeconds:0}s");
        Assert.True(undefended.Asr > 0.5, $"plain training on the poisoned set should learn the backdoor: ASR {undefended.Asr:P1}");
        Assert.Equal(300, detection.Poisoned);
        Assert.True(detection.Recall >= 0.9, $"recall {detection.Recall:P1}, precision {detection.Precision:P1}");
        Assert.True(after.Asr < 0.2 && after.Asr < undefended.Asr - 0.4, $"ASR {undefended.Asr:P1} → {after.Asr:P1}");
        Assert.True(after.Acc > undefended.Acc - 0.1, $"ACC {undefended.Acc:P1} → {after.Acc:P1}");

        // Stages: the defense's steps plus the undefended comparison, in order, with stage-level points.
        Assert.Equal(Enumerable.Range(0, 7), observer.Steps.Select(s => s.Index));
        Assert.All(observer.Steps, s => Assert.Equal(7, s.Count));
        var partition = Assert.Single(result.Trajectory, p => p.Phase == "partition");
        Assert.Equal(150, partition.Values!["likely_clean"]); // 5% of 3,000
        var enhance = result.Trajectory.Where(p => p.Phase == "enhance").ToList();
        Assert.Equal([1.0, 2.0], enhance.Select(p => p.X));
        Assert.Equal(300, enhance[^1].Values!["likely_clean"]);
        Assert.Equal(detection.Recall, enhance[^1].Values!["recall"], 12);
        Assert.Contains(result.Trajectory, p => p.Phase == "train" && p.ValAcc is > 0.5);
        Assert.Equal(result.Trajectory.Count, observer.Points.Count);

        // Scores and findings agree with the suspected set.
        Assert.Equal(PoisonedFashionMnist.TrainCount, result.Suspicion.Count);
        Assert.Equal(PoisonedFashionMnist.TrainCount, result.SampleColumns["consistency_kl"].Count);
        Assert.Equal(detection.Suspected, result.Suspected.Count);
        Assert.Equal(result.Suspected.Count, (int)result.Findings["suspected"]);
        Assert.Equal(PoisonedFashionMnist.TrainCount - result.Suspected.Count, (int)result.Findings["identified_clean"]);
        Assert.Equal(result.Suspected.Count, result.Chosen.X);
        Assert.True(result.Suspected.Select(i => result.Suspicion[i]).Min() >= 0.1, "a suspect's own label is the enhanced model's arg-max");
        Assert.InRange(result.Der!.Value, 0.5, 1);
    }

    [Fact]
    public void Same_seed_same_result_on_cpu_and_another_seed_differs()
    {
        var tiny = new Dictionary<string, object>
        {
            ["warmup_epochs"] = 1, ["iterations"] = 1, ["pgd_steps"] = 1, ["epochs"] = 1, ["unlearn_max_epochs"] = 1, ["batch_size"] = 64,
        };
        using var train = data.Poisoned.Data.Subset(Enumerable.Range(0, 600).Select(i => (long)i).ToArray());
        TrainingDefenseResult Run(int seed) => TrainingDefenseRunner.Run(data.Request(tiny, seed, train) with { TrainUndefended = false });
        using var a = Run(3);
        using var b = Run(3);
        using var c = Run(4);
        Assert.Equal(a.Suspected, b.Suspected);
        Assert.Equal(a.Suspicion, b.Suspicion);
        Assert.Equal(a.SampleColumns["consistency_kl"], b.SampleColumns["consistency_kl"]);
        Assert.Equal(a.After, b.After);
        using var sa = StateDict.FromModule(a.Model.Module);
        using var sb = StateDict.FromModule(b.Model.Module);
        Assert.All(sa.Keys, k => Assert.True(sa[k].eq(sb[k]).all().item<bool>(), $"{k} differs between two runs with seed 3"));
        Assert.NotEqual(a.Suspicion, c.Suspicion);
        Assert.Null(a.Undefended);
        Assert.Null(a.Detection);
    }

    [Fact]
    public void Bad_inputs_are_refused_before_any_work()
    {
        var badArchitecture = Assert.Throws<DefenseInputException>(() => TrainingDefenseRunner.Run(data.Request(Fast()) with { Architecture = "resnet9000" }));
        Assert.Contains("smallcnn", badArchitecture.Message);
        using var cifarShaped = new ImageDataset(TorchSharp.torch.zeros(10, 3, 32, 32, TorchSharp.torch.ScalarType.Byte), TorchSharp.torch.zeros(10, TorchSharp.torch.ScalarType.Int64));
        var shape = Assert.Throws<DefenseInputException>(() => TrainingDefenseRunner.Run(data.Request(Fast(), train: cifarShaped)));
        Assert.Contains("3×32×32", shape.Message);
        var flags = Assert.Throws<DefenseInputException>(() => TrainingDefenseRunner.Run(data.Request(Fast()) with { Truth = PoisonTruth.FromIndices(5, [1]) }));
        Assert.Contains("5 poison flags", flags.Message);
        var parameter = Assert.Throws<DefenseParameterException>(() => TrainingDefenseRunner.Run(data.Request(new() { ["partition_rate"] = 0.9 })));
        Assert.Contains("partition_rate", parameter.Errors.Keys);
    }

    [Fact]
    public void The_catalog_lists_advrbd_as_training_time_only_with_valid_defaults()
    {
        var advrbd = Assert.IsType<AdvrBdDefense>(DefenseCatalog.FindTrainingTime("AdvrBD"));
        Assert.Null(DefenseCatalog.Find("advrbd"));
        Assert.Equal(DefenseNeeds.PoisonedTrainingSet, advrbd.Needs);
        var resolved = DefenseParameters.Resolve(advrbd.Parameters);
        Assert.Equal(advrbd.Parameters.Count, resolved.Values.Count);
        Assert.All(advrbd.Parameters, p => Assert.False(string.IsNullOrWhiteSpace(p.Help)));
        var recipe = advrbd.Recipe(resolved, InputSpec.Grey28);
        Assert.Equal(resolved.Int("epochs"), recipe.Epochs);
        Assert.Equal(new Augmentation(2, false), recipe.Augment);
    }

    [Fact]
    public void The_attack_labs_poisoned_set_exposes_its_flags_and_they_survive_an_npz_round_trip()
    {
        var flags = data.Poisoned.PoisonFlags();
        Assert.Equal(PoisonedFashionMnist.TrainCount, flags.Length);
        Assert.Equal(data.Poisoned.PoisonedIndices, Enumerable.Range(0, flags.Length).Where(i => flags[i]));
        using var stream = new MemoryStream();
        NpzWriter.Write(data.Poisoned.Data, stream, flags);
        var bytes = stream.ToArray();
        Assert.Equal(flags, NumpyReader.ReadPoisonFlags(bytes, "poisoned.npz"));
        using var read = DatasetReader.Read(bytes, "poisoned.npz");
        Assert.True(read.Data.Labels.eq(data.Poisoned.Data.Labels).all().item<bool>());
        using var plain = new MemoryStream();
        NpzWriter.Write(data.Test, plain);
        Assert.Null(NumpyReader.ReadPoisonFlags(plain.ToArray(), "test.npz"));
    }
}
