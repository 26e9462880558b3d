namespace WebDefense.Core.Evaluation;

/// <summary>
/// How well a set of suspected samples matches the truly poisoned ones: precision = TP / suspected, recall =
/// TP / poisoned, F1 their harmonic mean (0 when undefined, e.g. nothing suspected).
/// </summary>
public sealed record DetectionMetrics(int Suspected, int Poisoned, int TruePositives, int Total)
{
    public double Precision => Suspected == 0 ? 0 : (double)TruePositives / Suspected;
    public double Recall => Poisoned == 0 ? 0 : (double)TruePositives / Poisoned;
    public double F1 => Precision + Recall == 0 ? 0 : 2 * Precision * Recall / (Precision + Recall);

    /// <summary>Poisoned samples that were not suspected (they stay in the training set).</summary>
    public int Missed => Poisoned - TruePositives;
}

/// <summary>
/// The ground truth of which training samples are poisoned, when it is known (the attack lab's own poisoned sets,
/// or an uploaded <c>poisoned</c> array). For REPORTING only: a defense may measure its intermediate selections with
/// it, never choose anything by it.
/// </summary>
public sealed class PoisonTruth
{
    private readonly bool[] _flags;

    /// <param name="flags">flags[i] is true when training sample i is poisoned.</param>
    public PoisonTruth(IReadOnlyList<bool> flags)
    {
        ArgumentNullException.ThrowIfNull(flags);
        _flags = flags.ToArray();
        Poisoned = _flags.Count(f => f);
    }

    /// <summary>Flags for <paramref name="count"/> samples from the (any order) indices of the poisoned ones.</summary>
    public static PoisonTruth FromIndices(int count, IEnumerable<int> poisoned)
    {
        var flags = new bool[count];
        foreach (var i in poisoned)
        {
            if (i < 0 || i >= count) throw new ArgumentOutOfRangeException(nameof(poisoned), i, $"poisoned index outside 0..{count - 1}");
            flags[i] = true;
        }

        return new PoisonTruth(flags);
    }

    public int Count => _flags.Length;
    public int Poisoned { get; }

    public bool IsPoisoned(int row) => _flags[row];

    /// <summary>How many of <paramref name="rows"/> are poisoned.</summary>
    public int CountPoisoned(IEnumerable<int> rows) => rows.Count(r => _flags[r]);

    /// <summary>
    /// AUROC of <paramref name="scores"/> (scores[i] belongs to rows[i]) as a detector that scores poisoned rows HIGHER
    /// than clean ones: the probability that a random poisoned row outscores a random clean row (ties count half);
    /// null when the rows hold only one kind.
    /// </summary>
    public double? Auroc(IReadOnlyList<int> rows, IReadOnlyList<double> scores)
    {
        if (rows.Count != scores.Count) throw new ArgumentException($"{scores.Count} scores for {rows.Count} rows");
        var order = Enumerable.Range(0, rows.Count).OrderBy(i => scores[i]).ToArray();
        long positives = 0, negatives = 0;
        double rankSum = 0;
        for (var start = 0; start < order.Length;)
        {
            var end = start;
            while (end + 1 < order.Length && scores[order[end + 1]] == scores[order[start]]) end++;
            var midRank = (start + end) / 2.0 + 1;
            for (var k = start; k <= end; k++)
            {
                if (_flags[rows[order[k]]]) { positives++; rankSum += midRank; }
                else negatives++;
            }

            start = end + 1;
        }

        return positives == 0 || negatives == 0 ? null : (rankSum - positives * (positives + 1) / 2.0) / ((double)positives * negatives);
    }

    /// <summary>Precision and recall of <paramref name="suspected"/> (distinct row indices) as a poisoned-sample detector.</summary>
    public DetectionMetrics Score(IReadOnlyCollection<int> suspected) =>
        new(suspected.Count, Poisoned, CountPoisoned(suspected), Count);
}
