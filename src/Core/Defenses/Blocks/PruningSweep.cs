using WebDefense.Core.Defenses.Framework;

namespace WebDefense.Core.Defenses.Blocks;

/// <summary>
/// Evaluates a sequence of pruning levels on validation data and chooses one. Selection never sees test data:
/// the rule takes the LARGEST level such that it and all smaller levels keep validation ACC within
/// <c>maxAccDrop</c> of the unpruned model's. With a validation ASR (triggered validation images) and an ASR bound
/// <c>maxAsr</c>, it takes instead, among those same levels, the SMALLEST whose validation ASR is at most the bound, or
/// when none is, the one with the lowest validation ASR (ties → the larger level, as the ACC rule would prune).
/// </summary>
public static class PruningSweep
{
    public sealed record Level(int Units, double Threshold);

    public sealed record Result(IReadOnlyList<(Level Level, ValidationScores Scores)> Points, int ChosenIndex, string Rule);

    /// <param name="levels">Increasing pruning levels; the first should be 0 units (the unpruned baseline).</param>
    /// <param name="prune">Applies a level to the model (from the unpruned state) before it is scored.</param>
    /// <param name="score">Scores the model in its current state.</param>
    public static Result Run(IReadOnlyList<Level> levels, Action<Level> prune, Func<ValidationScores> score, double maxAccDrop, string xLabel,
        IDefenseObserver observer, CancellationToken cancellation, double? maxAsr = null)
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
        if (maxAsr is { } bound && points.Take(chosen + 1).All(p => p.Item2.Asr is not null))
        {
            var withinAcc = points.Take(chosen + 1).Select((p, i) => (Asr: p.Item2.Asr!.Value, Index: i)).ToList();
            var first = withinAcc.FirstOrDefault(p => p.Asr <= bound, (Asr: double.NaN, Index: -1));
            var (asrIndex, how) = first.Index >= 0
                ? (first.Index, $"smallest pruning whose validation ASR ({first.Asr * 100:0.0}%) is at most {bound * 100:0.##}%")
                : (withinAcc.OrderBy(p => p.Asr).ThenByDescending(p => p.Index).First().Index,
                   $"no level within the ACC bound brings validation ASR to {bound * 100:0.##}%: lowest validation ASR ({withinAcc.Min(p => p.Asr) * 100:0.0}%, ties → the larger level)");
            return new Result(points, asrIndex, $"{how}, validation ACC {points[asrIndex].Item2.Acc * 100:0.0}% within {maxAccDrop * 100:0.##} points of the unpruned model's ({baseline * 100:0.0}%)");
        }

        return new Result(points, chosen, rule);
    }
}
