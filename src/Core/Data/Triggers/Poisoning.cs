using static TorchSharp.torch;

namespace WebDefense.Core.Data.Triggers;

/// <summary>A poisoned copy of a training set and the (ascending) indices of the poisoned samples. Owns <see cref="Data"/>.</summary>
public sealed class PoisonedDataset(ImageDataset data, int[] poisonedIndices) : IDisposable
{
    public ImageDataset Data { get; } = data;
    public IReadOnlyList<int> PoisonedIndices { get; } = poisonedIndices;

    /// <summary>Per-sample ground truth: flags[i] is true when row i of <see cref="Data"/> was poisoned.</summary>
    public bool[] PoisonFlags()
    {
        var flags = new bool[Data.Count];
        foreach (var i in PoisonedIndices) flags[i] = true;
        return flags;
    }

    public void Dispose() => Data.Dispose();
}

/// <summary>
/// Data poisoning as BackdoorBench does it (reference-algorithms §3.1): count = round(ratio·N) (half to
/// even, like Python's round). Dirty-label (BadNets, Blended): indices drawn uniformly without replacement
/// from all samples, target-class ones included; their labels become the target. Clean-label (SIG): drawn
/// from the target-class samples only; labels unchanged. Deterministic for a seed (System.Random, partial
/// Fisher–Yates); not the same draw as numpy's.
/// </summary>
public static class Poisoning
{
    public static int PoisonCount(int n, double ratio) => (int)Math.Round(ratio * n, MidpointRounding.ToEven);

    /// <summary>The indices that <see cref="Poison"/> poisons, ascending.</summary>
    public static int[] SelectIndices(ImageDataset train, int targetLabel, double ratio, bool cleanLabel, int seed)
    {
        if (!(ratio > 0 && ratio <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(ratio), ratio, "poisoning ratio must lie in (0, 1]");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(targetLabel);
        int count = PoisonCount(train.Count, ratio);
        int[] pool;
        if (cleanLabel)
        {
            using var scope = NewDisposeScope();
            pool = train.Labels.eq(targetLabel).nonzero().reshape(-1).cpu().data<long>().ToArray().Select(i => (int)i).ToArray();
            if (count > pool.Length)
            {
                throw new ArgumentException(
                    $"clean-label poisoning of {count} samples (ratio {ratio} of {train.Count}) needs that many target-class samples, but class {targetLabel} has {pool.Length}");
            }
        }
        else
        {
            pool = Enumerable.Range(0, train.Count).ToArray();
        }

        var rng = new Random(seed);
        for (int i = 0; i < count; i++)
        {
            int j = rng.Next(i, pool.Length);
            (pool[i], pool[j]) = (pool[j], pool[i]);
        }

        var chosen = pool[..count];
        Array.Sort(chosen);
        return chosen;
    }

    public static PoisonedDataset Poison(ImageDataset train, TriggerSpec trigger, int targetLabel, double ratio, bool cleanLabel, int seed)
    {
        var indices = SelectIndices(train, targetLabel, ratio, cleanLabel, seed);
        using var scope = NewDisposeScope();
        var images = train.Images.clone();
        var labels = train.Labels.clone();
        if (indices.Length > 0)
        {
            var idx = tensor(indices.Select(i => (long)i).ToArray(), ScalarType.Int64).to(images.device);
            var triggered = trigger.ApplyTo(images.index_select(0, idx));
            images.index_copy_(0, idx, triggered);
            if (!cleanLabel)
            {
                labels.index_fill_(0, idx.to(labels.device), targetLabel);
            }
        }

        return new PoisonedDataset(new ImageDataset(images, labels), indices);
    }
}
