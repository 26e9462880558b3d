using WebDefense.Core.Data;
using WebDefense.Core.Data.Triggers;
using WebDefense.Core.Defenses;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Models;
using WebDefense.Core.Tests.Data;

namespace WebDefense.Core.Tests.Defenses;

/// <summary>
/// The backdoored SmallCnn made by our attack lab (tests/fixtures/backdoored, BadNets, target 0, 10% poisoning;
/// see its .json for the command) plus real Fashion-MNIST: the defender holds images from the first half of the
/// test set, the metrics use the disjoint second half.
/// </summary>
public sealed class BackdooredFashionMnist : IDisposable
{
    public BackdooredFashionMnist()
    {
        using var all = TestData.FashionMnistTest();
        Pool = all.Subset(Enumerable.Range(0, 5000).Select(i => (long)i).ToArray());
        Test = all.Subset(Enumerable.Range(5000, 5000).Select(i => (long)i).ToArray());
        BackdoorTest = BackdoorTestSet.Build(Test, Trigger, 0).Data;
    }

    public static TriggerSpec Trigger => PatchTrigger.BadNets;
    public static string ModelPath(string file) => Path.Combine(AppContext.BaseDirectory, "fixtures", "backdoored", file);
    public static ModelDeclaration Declaration { get; } = new("smallcnn", 10, InputSpec.Grey28);

    public ImageDataset Pool { get; }
    public ImageDataset Test { get; }
    public ImageDataset BackdoorTest { get; }

    public LoadedModel Load(string file = "fmnist-smallcnn-badnets.pt") =>
        ModelLoader.Load(ModelPath(file), file.EndsWith(".ts.pt", StringComparison.Ordinal) ? Declaration with { Architecture = null } : Declaration);

    /// <summary>perClass images of each class from the defender's pool, chosen by seed.</summary>
    public ImageDataset Clean(int perClass, int seed)
    {
        var labels = Pool.Labels.data<long>().ToArray();
        var random = new Random(seed);
        var rows = Enumerable.Range(0, 10).SelectMany(c =>
        {
            var members = Enumerable.Range(0, labels.Length).Where(i => labels[i] == c).Select(i => (long)i).ToArray();
            random.Shuffle(members);
            return members.Take(perClass);
        }).ToArray();
        return Pool.Subset(rows);
    }

    public DefenseRequest Request(IDefense defense, Classifier model, ImageDataset clean, bool withBackdoor, int seed = 0,
        IReadOnlyDictionary<string, object>? parameters = null) => new()
    {
        Defense = defense,
        Model = model,
        CleanData = clean,
        Backdoor = withBackdoor ? new BackdoorSamples(Trigger.ApplyWithTrueLabels(clean), PairedWithClean: true) : null,
        TargetLabel = 0,
        Seed = seed,
        Parameters = parameters,
        TestSet = Test,
        BackdoorTestSet = BackdoorTest,
    };

    public void Dispose()
    {
        Pool.Dispose();
        Test.Dispose();
        BackdoorTest.Dispose();
    }
}

public class SeedDefenseIntegrationTests(BackdooredFashionMnist data) : IClassFixture<BackdooredFashionMnist>
{
    [Fact]
    public void Grad_prune_removes_the_backdoor_while_accuracy_holds()
    {
        using var loaded = data.Load();
        using var clean = data.Clean(100, seed: 1);
        using var result = DefenseRunner.Run(data.Request(new GradPruneDefense(), loaded.Classifier, clean, withBackdoor: true));
        Assert.True(result.Before!.Asr > 0.9, $"the fixture should be backdoored: ASR {result.Before.Asr:P1}");
        Assert.True(result.After!.Asr < 0.25, $"ASR {result.Before.Asr:P1} → {result.After.Asr:P1}");
        Assert.True(result.Before.Acc - result.After.Acc < 0.03, $"ACC {result.Before.Acc:P1} → {result.After.Acc:P1}");
        Assert.True(result.After.Ra > 0.6, $"RA {result.After.Ra:P1}");
        Assert.Equal(100, result.Parameters["samples_per_class"]);
        Assert.True((int)result.Findings["fine_tuning_epochs"] > 0);
        Assert.Contains(result.Trajectory, p => p.Phase == "prune" && p.X > 0 && p.ValAcc is not null && p.Loss is not null);
        Assert.Contains(result.Trajectory, p => p.Phase == "fine-tune");
        // The caller's model is untouched.
        var again = WebDefense.Core.Evaluation.Evaluator.Evaluate(loaded.Classifier, data.Test, data.BackdoorTest, 0);
        Assert.Equal(result.Before.Asr, again.Asr);
    }

    /// <summary>
    /// RNP on the demo model: unlearning drives the model to the target class (detection, paper Table 16) and the
    /// pruning level obeys its validation bound. On this 112-channel CNN the channels RNP ranks lowest also carry
    /// clean accuracy, so the bound keeps the model (nearly) unpruned and ASR does not fall: measured and explained
    /// in docs/results/seed-defenses.md, not asserted here.
    /// </summary>
    [Fact]
    public void Rnp_detects_the_target_label_and_its_selection_obeys_the_bound()
    {
        using var loaded = data.Load();
        using var clean = data.Clean(50, seed: 2);
        using var result = DefenseRunner.Run(data.Request(new RnpDefense(), loaded.Classifier, clean, withBackdoor: true));
        AssertRnpMechanism(result);
    }

    [Fact]
    public void Rnp_works_on_a_torchscript_model()
    {
        using var loaded = data.Load("fmnist-smallcnn-badnets.ts.pt");
        Assert.True(loaded.Classifier.IsTorchScript);
        using var clean = data.Clean(50, seed: 2);
        using var result = DefenseRunner.Run(data.Request(new RnpDefense(), loaded.Classifier, clean, withBackdoor: true));
        AssertRnpMechanism(result);
        Assert.True(result.Purified.IsTorchScript);
    }

    private static void AssertRnpMechanism(DefenseResult result)
    {
        Assert.Equal(0, result.Findings["detected_backdoor_label"]);
        Assert.True((double)result.Findings["detected_label_share"] > 0.9);
        Assert.True((double)result.Findings["unlearned_train_acc"] <= 0.20, "unlearning stops at the clean threshold");
        Assert.Contains(result.Trajectory, p => p.Phase == "unlearn");
        var sweep = result.Trajectory.Where(p => p.Phase == "prune").ToList();
        Assert.Equal(0, sweep[0].X);
        Assert.True(sweep[0].ValAsr > 0.9);
        var chosen = sweep.Last(p => p.X == result.Chosen.X);
        Assert.True(sweep[0].ValAcc - chosen.ValAcc <= 0.03 + 1e-9, result.Chosen.Rule);
        Assert.True(sweep.TakeWhile(p => p.X <= result.Chosen.X).All(p => sweep[0].ValAcc - p.ValAcc <= 0.03 + 1e-9));
        Assert.True(result.Before!.Acc - result.After!.Acc < 0.03, $"ACC {result.Before.Acc:P1} → {result.After.Acc:P1}");
        Assert.Equal(result.Chosen.X, (int)result.Findings["pruned_channels"]);
    }

    [Fact]
    public void Same_seed_same_result()
    {
        using var loaded = data.Load();
        using var clean = data.Clean(10, seed: 3);
        var fast = new Dictionary<string, object> { ["samples_per_class"] = 10, ["max_tuning_epochs"] = 2 };
        using var a = DefenseRunner.Run(data.Request(new GradPruneDefense(), loaded.Classifier, clean, true, seed: 5, fast));
        using var b = DefenseRunner.Run(data.Request(new GradPruneDefense(), loaded.Classifier, clean, true, seed: 5, fast));
        Assert.Equal(a.After, b.After);
        Assert.Equal(a.Trajectory.Select(p => (p.X, p.ValAcc, p.Loss, p.Note)), b.Trajectory.Select(p => (p.X, p.ValAcc, p.Loss, p.Note)));
    }

    [Fact]
    public void Grad_prune_refuses_without_backdoor_samples()
    {
        using var loaded = data.Load();
        using var clean = data.Clean(10, seed: 0);
        // With the scan off: nothing to prune by (with it on, the scan rebuilds the trigger; see ScanTests in the server tests).
        var ex = Assert.Throws<DefenseInputException>(() => DefenseRunner.Run(data.Request(new GradPruneDefense(), loaded.Classifier, clean, withBackdoor: false,
            parameters: new Dictionary<string, object> { ["scan"] = false })));
        Assert.Contains("needs backdoor samples", ex.Message);
    }
}
