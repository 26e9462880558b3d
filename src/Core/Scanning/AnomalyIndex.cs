namespace WebDefense.Core.Scanning;

/// <summary>
/// Neural Cleanse's outlier test on the per-label mask norms: the median absolute deviation, scaled by the consistency
/// constant 1.4826 so that it estimates the standard deviation of normal data, and per label the anomaly index
/// (median − norm) / MAD. Only labels whose mask is SMALLER than the median can be backdoor targets, so a label above the
/// median gets a negative index. A label is flagged when its index exceeds the threshold (the authors': 2).
/// </summary>
public static class AnomalyIndex
{
    public const double Consistency = 1.4826;
    public const double DefaultThreshold = 2.0;

    public sealed record Result(double Median, double Mad, IReadOnlyList<double> Indices);

    public static Result Compute(IReadOnlyList<double> norms)
    {
        if (norms.Count < 3)
        {
            throw new ArgumentException("the anomaly index needs the mask norms of at least 3 labels", nameof(norms));
        }

        var median = Median(norms);
        var mad = Consistency * Median(norms.Select(n => Math.Abs(n - median)).ToList());
        // All norms (nearly) equal: no label stands out, and a zero MAD must not turn a rounding difference into an outlier.
        var scale = Math.Max(mad, 1e-6 * Math.Max(Math.Abs(median), 1e-12));
        return new Result(median, mad, norms.Select(n => (median - n) / scale).ToList());
    }

    public static double Median(IReadOnlyList<double> values)
    {
        var sorted = values.Order().ToArray();
        var mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }
}
