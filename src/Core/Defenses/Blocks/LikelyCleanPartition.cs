namespace WebDefense.Core.Defenses.Blocks;

/// <summary>
/// AdvrBD's partition rule (Algorithm 1, and its growth step in Algorithm 2): the samples whose consistency score (KL
/// under an adversarial patch perturbation) is LARGEST are the least backdoor-like, so the top share of them becomes the
/// likely-clean set D_c; every later round moves the next most inconsistent samples of the rest D_r into D_c.
/// Ties go to the lower index and NaN scores are never chosen, so the rule is deterministic.
/// </summary>
public static class LikelyCleanPartition
{
    /// <summary>How many samples a round moves: round(rate · total) (half to even), at least 1 when rate &gt; 0.</summary>
    public static int Quota(int total, double rate)
    {
        if (rate is < 0 or > 1 || double.IsNaN(rate)) throw new ArgumentOutOfRangeException(nameof(rate), rate, "must lie in [0, 1]");
        var count = (int)Math.Round(rate * total, MidpointRounding.ToEven);
        return rate > 0 ? Math.Max(1, count) : 0;
    }

    /// <summary>
    /// The class-balanced variant: for every label c, the round(rate · n_c) least consistent candidates labelled c, where
    /// n_c counts label c in the whole set (<paramref name="labels"/>, indexed by row); ascending by row. Keeps one class
    /// (e.g. the attack's target, whose samples are half poison) from being left out of D_c.
    /// </summary>
    public static int[] MostInconsistentPerLabel(IReadOnlyList<int> candidates, IReadOnlyList<double> scores, IReadOnlyList<long> labels, double rate)
    {
        if (candidates.Count != scores.Count) throw new ArgumentException($"{scores.Count} scores for {candidates.Count} candidates");
        var sizes = labels.GroupBy(l => l).ToDictionary(g => g.Key, g => g.Count());
        return Enumerable.Range(0, candidates.Count)
            .GroupBy(i => labels[candidates[i]])
            .SelectMany(g => MostInconsistent(g.Select(i => candidates[i]).ToArray(), g.Select(i => scores[i]).ToArray(), Quota(sizes[g.Key], rate)))
            .Order()
            .ToArray();
    }

    /// <summary>
    /// The <paramref name="count"/> rows of <paramref name="candidates"/> with the largest <paramref name="scores"/>
    /// (scores[i] belongs to candidates[i]), ascending by row; fewer when there are fewer (non-NaN) candidates.
    /// </summary>
    public static int[] MostInconsistent(IReadOnlyList<int> candidates, IReadOnlyList<double> scores, int count)
    {
        if (candidates.Count != scores.Count) throw new ArgumentException($"{scores.Count} scores for {candidates.Count} candidates");
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        return Enumerable.Range(0, candidates.Count)
            .Where(i => !double.IsNaN(scores[i]))
            .OrderByDescending(i => scores[i]).ThenBy(i => candidates[i])
            .Take(count)
            .Select(i => candidates[i])
            .Order()
            .ToArray();
    }
}
