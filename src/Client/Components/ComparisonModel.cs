using System.Text.Json;
using WebDefense.Client.Api;
using WebDefense.Client.Charts;

namespace WebDefense.Client.Components;

/// <summary>
/// What the Compare page shows for a set of runs: overlaid trajectories, the parameter table and the ACC-vs-ASR scatter.
/// <paramref name="names"/>: the team's model and data-set names by id, shown instead of ids where known.
/// </summary>
public sealed class ComparisonModel(IReadOnlyList<(RunInfo Run, IReadOnlyList<TrajectoryPoint> Points)> runs, IReadOnlyDictionary<Guid, string>? names = null)
{
    private readonly IReadOnlyDictionary<Guid, string> _names = names ?? new Dictionary<Guid, string>();

    public IReadOnlyList<(RunInfo Run, IReadOnlyList<TrajectoryPoint> Points)> Runs { get; } = runs;

    public static string Label(RunInfo run) => $"{run.Defense} #{run.Id.ToString("N")[..6]} s{run.Seed}";

    /// <summary>Each run's validation <paramref name="metric"/> (ACC, ASR or RA) along its chosen phase, one colour per run.</summary>
    public IReadOnlyList<ChartSeries> Trajectories(string metric) =>
        Runs.Select((r, i) =>
        {
            var phase = TrajectoryView.ChosenPhase(r.Points);
            var series = phase is null ? null : TrajectoryView.Series(r.Points, phase).FirstOrDefault(s => s.Name == metric);
            return series is null ? null : series with { Name = Label(r.Run), Color = ChartPalette.ForRun(i) };
        }).OfType<ChartSeries>().ToList();

    /// <summary>The seed papers' Fig. 1 view: test ACC (x) against ASR (y) after each defense, and the suspect models before.</summary>
    public IReadOnlyList<ChartSeries> Scatter()
    {
        var series = Runs.Select((r, i) => r.Run.After is { Acc: { } acc, Asr: { } asr }
                ? new ChartSeries(Label(r.Run), ChartPalette.ForRun(i), [new ChartPoint(acc * 100, asr * 100, $"{Label(r.Run)}: ACC {acc * 100:0.##}%, ASR {asr * 100:0.##}%")])
                : null)
            .OfType<ChartSeries>().ToList();
        // A post-training run's "before" is the suspect model; a training-time run's is its own undefended model.
        List<ChartPoint> Before(bool trainingTime, string label) => Runs.Where(r => r.Run.IsTrainingTime == trainingTime && r.Run.Before is { Acc: not null, Asr: not null })
            .Select(r => new ChartPoint(r.Run.Before.Acc!.Value * 100, r.Run.Before.Asr!.Value * 100, $"{label} {Label(r.Run)}"))
            .DistinctBy(p => (p.X, p.Y)).ToList();
        if (Before(false, "before") is { Count: > 0 } before) series.Add(new ChartSeries("before defense", "#6b6b6b", before)); // grey at 5.3:1 on white
        if (Before(true, "undefended") is { Count: > 0 } undefended) series.Add(new ChartSeries("undefended (trained on the whole set)", "#616161", undefended));
        return series;
    }

    /// <summary>Rows of the parameter table (runs as columns): defense, seed, each resolved parameter; Differs marks rows whose values are not all equal.</summary>
    public IReadOnlyList<(string Name, string[] Values, bool Differs)> ParameterRows()
    {
        var maps = Runs.Select(r => Flatten(r.Run, _names)).ToList();
        var names = maps.SelectMany(m => m.Keys).Distinct().ToList();
        return names.Select(n =>
        {
            var values = maps.Select(m => m.TryGetValue(n, out var v) ? v : "–").ToArray();
            return (n, values, values.Distinct().Count() > 1);
        }).ToList();
    }

    private static Dictionary<string, string> Flatten(RunInfo run, IReadOnlyDictionary<Guid, string> names)
    {
        string Name(Guid? id, string missing) => id is { } g ? names.TryGetValue(g, out var n) ? n : g.ToString("N")[..8] : missing;
        var map = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["defense"] = run.Defense,
            ["seed"] = run.Seed.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["model"] = Name(run.ModelId, $"{run.Architecture ?? "?"} (trained)"),
            ["clean set"] = Name(run.CleanDatasetId, "–"),
            ["trigger"] = run.Trigger ?? "–",
        };
        if (run.IsTrainingTime)
        {
            map["training set"] = Name(run.PoisonedTrainDatasetId, "–");
            map["classes"] = run.NumClasses?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "–";
            map["suspected"] = run.Detection?.Suspected?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "–";
            map["detection recall"] = Format.Percent(run.Detection?.Recall);
            map["detection precision"] = Format.Percent(run.Detection?.Precision);
        }

        if ((run.ResolvedParameters ?? run.Parameters) is { ValueKind: JsonValueKind.Object } p)
        {
            foreach (var e in p.EnumerateObject()) map[e.Name] = Format.Json(e.Value);
        }

        return map;
    }
}
