using WebDefense.Core.Defenses.Framework;

namespace WebDefense.Core.Defenses.Blocks;

/// <summary>
/// Evaluates a sequence of pruning levels on validation data and chooses one. Selection never sees test data:
/// the rule takes the LARGEST level such that it and all smaller levels keep validation ACC within
/// <c>maxAccDrop</c> of the unpruned model's.
/// </summary>
public static class PruningSweep
{
    public sealed record Level(int Units, double Threshold);

    public sealed record Result(IReadOnlyList<(Level Level, ValidationScores Scores)> Points, int ChosenIndex, string Rule);

    /// <param name="levels">Increasing pruning levels; the first should be 0 units (the unpruned baseline).</param>
    /// <param name="prune">Applies a level to the model (from the unpruned state) before it is scored.</param>
    /// <param name="score">Scores the model in its current state.</param>
    public static Result Run(IReadOnlyList<Level> levels, Action<Level> prune, Func<ValidationScores> score, double maxAccDrop, string xLabel,
        IDefenseObserver observer, CancellationToken cancellation)
    {
        var points = new List<(Level, ValidationScores)>();
        for (var i = 0; i < levels.Count; i++)
        {
            cancellation.ThrowIfCancellationRequested();
            prune(levels[i]);
            var scores = score();
            points.Add((levels[i], scores));
            observer.Point(new TrajectoryPoint(levels[i].Units, xLabel, scores.Acc, scores.Asr, scores.Ra, scores.BackdoorLoss ?? scores.CleanLoss,
                $"threshold {levels[i].Threshold:0.###}"));
            observer.Progress((i + 1.0) / levels.Count, $"{levels[i].Units} {xLabel}: val ACC {scores.Acc:P1}" + (scores.Asr is { } a ? $", val ASR {a:P1}" : string.Empty));
        }

        // The largest level such that it and every smaller level keep validation ACC within the bound: a level
        // past a collapse that happens to recover is not taken.
        var baseline = points[0].Item2.Acc;
        var chosen = 0;
        while (chosen + 1 < points.Count && baseline - points[chosen + 1].Item2.Acc <= maxAccDrop)
        {
            chosen++;
        }

        var rule = $"largest pruning whose validation ACC ({points[chosen].Item2.Acc * 100:0.0}%), and that of every smaller level, is within {maxAccDrop * 100:0.##} points of the unpruned model's ({baseline * 100:0.0}%)";
        return new Result(points, chosen, rule);
    }
}
