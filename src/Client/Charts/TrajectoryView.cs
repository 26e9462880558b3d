using WebDefense.Client.Api;

namespace WebDefense.Client.Charts;

/// <summary>Turns a run's trajectory points into chart series: one chart per phase (prune sweep, fine-tuning epochs…).</summary>
public static class TrajectoryView
{
    /// <summary>The series name of the validation ASR estimated with a scan's reconstructed trigger.</summary>
    public const string EstimatedAsr = "est. ASR (reconstructed trigger)";

    public static IReadOnlyList<string> Phases(IReadOnlyList<TrajectoryPoint> points) =>
        points.Select(p => p.Phase).Distinct().ToList();

    /// <summary>
    /// The phase the defense's chosen operating point belongs to: the pruning sweep when there is one (its x is units
    /// pruned), otherwise the last phase (fine-tuning-style defenses choose an epoch of their final phase). A training-time
    /// run's "undefended" comparison comes last but is not the defense's.
    /// </summary>
    public static string? ChosenPhase(IReadOnlyList<TrajectoryPoint> points)
    {
        var phases = Phases(points);
        return phases.Contains("prune") ? "prune" : phases.LastOrDefault(p => p != "undefended") ?? phases.LastOrDefault();
    }

    public static string XLabel(IReadOnlyList<TrajectoryPoint> points, string phase) =>
        points.FirstOrDefault(p => p.Phase == phase)?.XLabel ?? "";

    /// <summary>ACC, ASR and RA (validation, in percent) along x for one phase; series without any value are left out.</summary>
    public static IReadOnlyList<ChartSeries> Series(IReadOnlyList<TrajectoryPoint> points, string phase, string prefix = "")
    {
        var inPhase = points.Where(p => p.Phase == phase).ToList();
        var series = new List<ChartSeries>();
        void Add(string name, string color, Func<TrajectoryPoint, double?> value, bool dashed = false)
        {
            var list = inPhase.Where(p => value(p) is not null)
                .Select(p => new ChartPoint(p.X, value(p)!.Value * 100, $"{prefix}{name} {value(p)!.Value * 100:0.#}% at {p.XLabel} {LinearScale.Format(p.X)}{(p.Note is null ? "" : $" ({p.Note})")}"))
                .ToList();
            if (list.Count > 0) series.Add(new ChartSeries(prefix + name, color, list, dashed));
        }

        Add("ACC", ChartPalette.Acc, p => p.ValAcc);
        Add("ASR", ChartPalette.Asr, p => p.ValAsr);
        Add("RA", ChartPalette.Ra, p => p.ValRa, dashed: true);
        // A run that scanned first: validation ASR measured with the reconstructed trigger, an estimate, drawn as its own series.
        Add(EstimatedAsr, ChartPalette.Asr, p => p.Value("estimated_val_asr"), dashed: true);
        return series;
    }
}
