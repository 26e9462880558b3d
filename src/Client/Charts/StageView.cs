using System.Globalization;
using WebDefense.Client.Api;

namespace WebDefense.Client.Charts;

/// <summary>One stage of a training-time run: its chart series (percent) and the counts of each point that are not fractions.</summary>
public sealed record Stage(string Phase, string Title, string XLabel, IReadOnlyList<ChartSeries> Series, IReadOnlyList<string> CountNames, IReadOnlyList<(double X, string[] Counts)> CountRows);

/// <summary>
/// Turns a training-time run's trajectory (AdvrBD: warm-up, partition, enhance, train, fine-tune, undefended) into one
/// small chart per phase; the partition is a single point and is told as text instead.
/// </summary>
public static class StageView
{
    public const string Partition = "partition";

    /// <summary>What each phase plots: a key of <see cref="TrajectoryPoint.Values"/> ("valAcc" is the point's validation ACC), its name and colour.</summary>
    private static readonly Dictionary<string, (string Key, string Name, string Color, bool Dashed)[]> Plotted = new(StringComparer.Ordinal)
    {
        ["warm-up"] = [("train_acc", "train ACC", ChartPalette.Acc, false)],
        ["undefended"] = [("valAcc", "val ACC", ChartPalette.Ra, false), ("train_acc", "train ACC", ChartPalette.Acc, false)],
        ["enhance"] =
        [
            ("recall", "recall", ChartPalette.Asr, false),
            ("precision", "precision", "#a04000", false),
            ("acc_likely_clean", "ACC on likely-clean", ChartPalette.Acc, false),
            ("acc_rest", "ACC on the rest", ChartPalette.Ra, false),
            ("likely_clean_share", "likely-clean share", "#6a1b9a", true),
        ],
        ["train"] = [("valAcc", "val ACC", ChartPalette.Ra, false), ("train_acc", "train ACC", ChartPalette.Acc, true)],
        ["fine-tune"] = [("valAcc", "val ACC", ChartPalette.Ra, false), ("train_acc", "train ACC", ChartPalette.Acc, true)],
    };

    /// <summary>Phases this view does not know: validation ACC/ASR/RA and train ACC, when present.</summary>
    private static readonly (string Key, string Name, string Color, bool Dashed)[] Fallback =
        [("valAcc", "val ACC", ChartPalette.Acc, false), ("valAsr", "val ASR", ChartPalette.Asr, false), ("valRa", "val RA", ChartPalette.Ra, true), ("train_acc", "train ACC", "#546e7a", true)];

    private static readonly Dictionary<string, string> Titles = new(StringComparer.Ordinal)
    {
        ["warm-up"] = "Warm-up on the whole untrusted set",
        ["enhance"] = "Backdoor enhancement",
        ["train"] = "Clean training on the identified-clean samples",
        ["fine-tune"] = "Relabel + fine-tune",
        ["undefended"] = "Undefended comparison (whole set, same recipe)",
    };

    public static string Title(string phase) => Titles.TryGetValue(phase, out var t) ? t : phase;

    /// <summary>The charted stages in the order the run reported them (every phase but the partition).</summary>
    public static IReadOnlyList<Stage> Stages(IReadOnlyList<TrajectoryPoint> points) =>
        TrajectoryView.Phases(points).Where(p => p != Partition).Select(phase =>
        {
            var inPhase = points.Where(p => p.Phase == phase).OrderBy(p => p.X).ToList();
            var plotted = Plotted.TryGetValue(phase, out var known) ? known : Fallback;
            var series = plotted.Select(s => Series(inPhase, s.Key, s.Name, s.Color, s.Dashed)).OfType<ChartSeries>().ToList();
            var plottedKeys = plotted.Select(s => s.Key).ToHashSet(StringComparer.Ordinal);
            var countNames = inPhase.SelectMany(p => p.Values?.Keys ?? []).Distinct().Where(k => !plottedKeys.Contains(k)).ToList();
            var rows = countNames.Count == 0 ? [] : inPhase.Select(p => (p.X, countNames.Select(n => Number(p.Value(n))).ToArray())).ToList();
            return new Stage(phase, Title(phase), TrajectoryView.XLabel(points, phase), series, countNames, rows);
        }).ToList();

    /// <summary>The partition point's numbers as short sentences (size of the likely-clean set, KL threshold, AUROC…), or none.</summary>
    public static IReadOnlyList<string> PartitionFacts(IReadOnlyList<TrajectoryPoint> points)
    {
        if (points.FirstOrDefault(p => p.Phase == Partition) is not { } p) return [];
        var facts = new List<string>();
        if (p.Value("likely_clean") is { } size)
        {
            facts.Add($"likely-clean set D_c: {Number(size)} samples" + (p.Value("likely_clean_share") is { } share ? $" ({Percent(share)} of the set)" : ""));
        }

        if (p.Value("poisoned_in_likely_clean") is { } poisoned) facts.Add($"poisoned in D_c: {Number(poisoned)}");
        if (p.Value("kl_threshold") is { } threshold)
        {
            facts.Add($"KL threshold {threshold.ToString("0.####", CultureInfo.InvariantCulture)}" + (p.Value("kl_median") is { } median ? $" (median {median.ToString("0.####", CultureInfo.InvariantCulture)})" : ""));
        }

        if (p.Value("consistency_auroc") is { } auroc) facts.Add($"AUROC of the consistency score {auroc.ToString("0.####", CultureInfo.InvariantCulture)}");
        if (p.Note is not null) facts.Add(p.Note);
        return facts;
    }

    private static ChartSeries? Series(IReadOnlyList<TrajectoryPoint> inPhase, string key, string name, string color, bool dashed)
    {
        double? ValueOf(TrajectoryPoint p) => key switch
        {
            "valAcc" => p.ValAcc,
            "valAsr" => p.ValAsr,
            "valRa" => p.ValRa,
            _ => p.Value(key),
        };

        var list = inPhase.Where(p => ValueOf(p) is not null)
            .Select(p => new ChartPoint(p.X, ValueOf(p)!.Value * 100, $"{name} {Percent(ValueOf(p)!.Value)} at {p.XLabel} {LinearScale.Format(p.X)}"))
            .ToList();
        return list.Count == 0 ? null : new ChartSeries(name, color, list, dashed);
    }

    private static string Percent(double fraction) => (fraction * 100).ToString("0.#", CultureInfo.InvariantCulture) + "%";

    private static string Number(double? value) => value switch
    {
        null => "–",
        { } v when v == Math.Floor(v) && Math.Abs(v) < 1e15 => v.ToString("N0", CultureInfo.InvariantCulture),
        { } v => v.ToString("0.####", CultureInfo.InvariantCulture),
    };
}
