namespace WebDefense.Core.Defenses.Framework;

/// <summary>Train/validation splits of the defender's data (indices into the dataset).</summary>
public static class DataSplits
{
    /// <summary>
    /// Grad-Prune's per-class split (reference-algorithms §11): per class draw <paramref name="perClass"/>
    /// indices without replacement; the first n_val = floor(perClass·valRatio) go to validation, the rest to
    /// training; if n_val &lt; 1, n_val = 1 and perClass + 1 are drawn. Classes with too few samples give
    /// what they have (at least one validation sample when they have two or more).
    /// </summary>
    public static (long[] Train, long[] Validation) PerClass(IReadOnlyList<long> labels, int perClass, double valRatio, Random random)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(perClass, 1);
        var nVal = (int)(perClass * valRatio);
        var draw = perClass;
        if (nVal < 1)
        {
            nVal = 1;
            draw = perClass + 1;
        }

        var train = new List<long>();
        var validation = new List<long>();
        foreach (var group in labels.Select((label, index) => (label, index: (long)index)).GroupBy(x => x.label).OrderBy(g => g.Key))
        {
            var members = group.Select(x => x.index).ToArray();
            random.Shuffle(members);
            var taken = members.Take(draw).ToArray();
            var val = Math.Min(nVal, Math.Max(0, taken.Length - 1));
            validation.AddRange(taken.Take(val));
            train.AddRange(taken.Skip(val));
        }

        return (train.ToArray(), validation.ToArray());
    }

    /// <summary>A stratified hold-out: about <paramref name="valFraction"/> of each class goes to validation.</summary>
    public static (long[] Train, long[] Validation) Holdout(IReadOnlyList<long> labels, double valFraction, Random random)
    {
        if (valFraction is <= 0 or >= 1)
        {
            throw new ArgumentOutOfRangeException(nameof(valFraction), "must be in (0, 1)");
        }

        var train = new List<long>();
        var validation = new List<long>();
        foreach (var group in labels.Select((label, index) => (label, index: (long)index)).GroupBy(x => x.label).OrderBy(g => g.Key))
        {
            var members = group.Select(x => x.index).ToArray();
            random.Shuffle(members);
            var val = members.Length < 2 ? 0 : Math.Max(1, (int)Math.Round(members.Length * valFraction));
            validation.AddRange(members.Take(val));
            train.AddRange(members.Skip(val));
        }

        return (train.ToArray(), validation.ToArray());
    }
}
