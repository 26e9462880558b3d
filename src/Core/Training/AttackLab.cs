using TorchSharp;
using WebDefense.Core.Data;
using WebDefense.Core.Data.Triggers;
using WebDefense.Core.Models;
using WebDefense.Core.Models.Zoo;
using WebDefense.Core.Runtime;

namespace WebDefense.Core.Training;

/// <summary>A data-poisoning attack: trigger, target, share of the training set poisoned, dirty- or clean-label.</summary>
public sealed record AttackSpec(TriggerSpec Trigger, int TargetLabel = 0, double PoisonRatio = 0.1, bool CleanLabel = false)
{
    /// <summary>BadNets (3×3 white patch, bottom right), target 0, 10% dirty-label.</summary>
    public static AttackSpec BadNets => new(PatchTrigger.BadNets);

    /// <summary>Blended with a seeded noise pattern (α = 0.2), target 0, 10% dirty-label.</summary>
    public static AttackSpec Blended => new(new BlendTrigger { Alpha = 0.2, Pattern = "noise", Seed = 0 });

    /// <summary>SIG (Δ = 40, f = 6), target 0, clean-label: poisons target-class images only, labels unchanged.</summary>
    public static AttackSpec Sig(double ratio) => new(new SigTrigger(), PoisonRatio: ratio, CleanLabel: true);
}

/// <summary>A model trained on poisoned data, with the rows that were poisoned and its training history.</summary>
public sealed record BackdooredModel(Classifier Model, IReadOnlyList<int> PoisonedIndices, IReadOnlyList<EpochReport> History) : IDisposable
{
    public void Dispose() => Model.Dispose();
}

/// <summary>
/// Makes backdoored models for tests, demos and experiments: poison a training set with a trigger
/// (reference-algorithms §3.1: trigger applied once to the uint8 images, then the usual augmentation) and
/// train a zoo architecture with SGD. Deterministic for a seed on CPU.
/// </summary>
public static class AttackLab
{
    /// <summary>
    /// BackdoorBench's recipe scaled down for CPU: SGD momentum 0.9, wd 5e-4, batch 128, cosine schedule over
    /// the run, drop_last; <paramref name="epochs"/> instead of 100, and a larger learning rate to make up for them.
    /// </summary>
    public static SgdOptions Recipe(int epochs, InputSpec input, double learningRate = 0.05) => new()
    {
        LearningRate = learningRate, Momentum = 0.9, WeightDecay = 5e-4, BatchSize = 128, Epochs = epochs,
        Schedule = LearningRateSchedule.Cosine(epochs), DropLast = true, Augment = Augmentation.ForInput(input),
    };

    public static BackdooredModel Train(string architecture, int numClasses, InputSpec input, ImageDataset cleanTrain, AttackSpec attack,
        SgdOptions options, int seed, Action<EpochReport>? onEpoch = null, CancellationToken cancellation = default)
    {
        input.EnsureMatches(cleanTrain, "training set");
        using var poisoned = Poisoning.Poison(cleanTrain, attack.Trigger, attack.TargetLabel, attack.PoisonRatio, attack.CleanLabel, seed);
        return Fit(architecture, numClasses, input, poisoned.Data, poisoned.PoisonedIndices, options, seed, onEpoch, cancellation);
    }

    /// <summary>The same recipe on the training set as it is, without poison: the clean reference a scan must not flag.</summary>
    public static BackdooredModel TrainClean(string architecture, int numClasses, InputSpec input, ImageDataset cleanTrain,
        SgdOptions options, int seed, Action<EpochReport>? onEpoch = null, CancellationToken cancellation = default)
    {
        input.EnsureMatches(cleanTrain, "training set");
        return Fit(architecture, numClasses, input, cleanTrain, [], options, seed, onEpoch, cancellation);
    }

    private static BackdooredModel Fit(string architecture, int numClasses, InputSpec input, ImageDataset data, IReadOnlyList<int> poisoned,
        SgdOptions options, int seed, Action<EpochReport>? onEpoch, CancellationToken cancellation)
    {
        torch.random.manual_seed(seed);
        var model = ModelZoo.CreateClassifier(architecture, numClasses, input);
        try
        {
            var history = new TrainingLoop { Model = model, Data = data, Options = options, OnEpoch = onEpoch }
                .Run(new Random(seed), cancellation);
            model.Module.eval();
            return new BackdooredModel(model, poisoned, history);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        finally
        {
            GcQuietRegion.Release();
        }
    }
}
