using System.Globalization;
using System.Text;
using System.Text.Json;
using WebDefense.Core.Data;
using WebDefense.Core.Data.Triggers;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Evaluation;
using WebDefense.Core.Models;
using WebDefense.Core.Training;

namespace WebDefense.Experiments;

/// <summary>One defense configuration of a study: the defense, the defender's clean samples per class, overrides.</summary>
internal sealed record StudyDefense(IDefense Defense, int PerClass, string Label, IReadOnlyDictionary<string, object>? Parameters = null);

/// <summary>What one defense run gave (percentages are fractions here), as kept in the study's JSON-lines log.</summary>
internal sealed record StudyRow(
    string Attack, string Defense, int Seed,
    double AccBefore, double AsrBefore, double RaBefore,
    double AccAfter, double AsrAfter, double RaAfter, double Der,
    double Units, string Rule, Dictionary<string, string> Findings, double WallSeconds, double PeakRssMb);

/// <summary>
/// Runs defenses over backdoored SmallCnn models and seeds on Fashion-MNIST: each seed draws a new class-balanced
/// defender set from the clean training images (the triggered copies, with TRUE labels, are the backdoor samples
/// for defenses that need them); selection inside a defense sees only that set; the 10k test set and its
/// triggered non-target images give the before/after metrics. Every finished run is appended to a JSON-lines
/// log, so an interrupted study resumes where it stopped.
/// </summary>
internal static class DefenseStudy
{
    /// <param name="only">Seeds this process runs (default: all); several processes can share one log, each with its own seeds.</param>
    public static List<StudyRow> Run(IReadOnlyList<(string Name, AttackSpec Attack)> attacks, IReadOnlyList<StudyDefense> defenses, int seeds,
        int epochs, double lr, string cache, string log, IReadOnlyCollection<int>? only = null)
    {
        using var train = FashionMnist.Train();
        using var test = FashionMnist.Test();
        var models = attacks.ToDictionary(a => a.Name, a => BackdooredModels.Cached(cache, a.Name, a.Attack, train, epochs, lr, seed: 0));
        try
        {
            return RunOn(train, test, models, attacks, defenses, seeds, log, only);
        }
        finally
        {
            foreach (var model in models.Values) model.Dispose();
        }
    }

    /// <summary>
    /// The study on any data set and victims: <paramref name="train"/> is where each seed's defender set is drawn from,
    /// <paramref name="test"/> gives the before/after metrics; the models are the attacks' victims (not disposed here).
    /// A victim's before-metrics are evaluated once and passed to every later run on it.
    /// </summary>
    public static List<StudyRow> RunOn(ImageDataset train, ImageDataset test, IReadOnlyDictionary<string, Classifier> models,
        IReadOnlyList<(string Name, AttackSpec Attack)> attacks, IReadOnlyList<StudyDefense> defenses, int seeds, string log,
        IReadOnlyCollection<int>? only = null)
    {
        var rows = File.Exists(log) ? File.ReadLines(log).Where(l => l.Length > 0).Select(l => JsonSerializer.Deserialize<StudyRow>(l)!).ToList() : [];
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(log))!);
        var bdTests = attacks.ToDictionary(a => a.Name, a => BackdoorTestSet.Build(test, a.Attack.Trigger, a.Attack.TargetLabel));
        var before = new Dictionary<string, BackdoorMetrics>();
        try
        {
            // Seed-major: a study stopped after k seeds has complete k-seed tables for every attack and defense.
            foreach (var seed in Enumerable.Range(0, seeds).Where(s => only is null || only.Count == 0 || only.Contains(s)))
            {
                foreach (var (name, attack) in attacks)
                {
                    foreach (var entry in defenses)
                    {
                        if (rows.Any(r => r.Attack == name && r.Defense == entry.Label && r.Seed == seed))
                        {
                            continue;
                        }

                        using var clean = BalancedSample(train, entry.PerClass, 1000 + seed);
                        using var triggered = attack.Trigger.ApplyWithTrueLabels(clean);
                        ResetPeakRss();
                        using var result = DefenseRunner.Run(new DefenseRequest
                        {
                            Defense = entry.Defense,
                            Model = models[name],
                            CleanData = clean,
                            Backdoor = entry.Defense.Needs.HasFlag(DefenseNeeds.BackdoorSamples) ? new BackdoorSamples(triggered, PairedWithClean: true) : null,
                            TargetLabel = attack.TargetLabel,
                            Seed = seed,
                            Parameters = entry.Parameters,
                            TestSet = test,
                            BackdoorTestSet = bdTests[name].Data,
                            KnownBefore = before.GetValueOrDefault(name),
                            Device = ExperimentDevice.Current,
                        });
                        before.TryAdd(name, result.Before!);
                        var row = new StudyRow(name, entry.Label, seed,
                            result.Before!.Acc, result.Before.Asr!.Value, result.Before.Ra!.Value,
                            result.After!.Acc, result.After.Asr!.Value, result.After.Ra!.Value, result.Der!.Value,
                            result.Chosen.X, result.Chosen.Rule,
                            result.Findings.ToDictionary(f => f.Key, f => Format(f.Value)), result.WallTime.TotalSeconds, PeakRss() / 1048576.0);
                        rows.Add(row);
                        File.AppendAllText(log, JsonSerializer.Serialize(row) + "\n");
                        Console.WriteLine($"{name} {entry.Label} seed {seed}: ACC {row.AccBefore:P2}→{row.AccAfter:P2} ASR {row.AsrBefore:P2}→{row.AsrAfter:P2} " +
                                          $"RA →{row.RaAfter:P2}, x = {row.Units}, {row.WallSeconds:0.0}s");
                    }
                }
            }
        }
        finally
        {
            foreach (var bd in bdTests.Values) bd.Dispose();
        }

        // Tables in a stable order (attack, then defense as listed, then seed), whatever order the log was written in.
        return rows.Where(r => attacks.Any(a => a.Name == r.Attack) && defenses.Any(d => d.Label == r.Defense) && r.Seed < seeds)
            .OrderBy(r => attacks.Select(a => a.Name).ToList().IndexOf(r.Attack)).ThenBy(r => defenses.Select(d => d.Label).ToList().IndexOf(r.Defense))
            .ThenBy(r => r.Seed).ToList();
    }

    /// <summary>perClass images of every class, drawn without replacement from the clean training set.</summary>
    public static ImageDataset BalancedSample(ImageDataset data, int perClass, int seed)
    {
        var random = new Random(seed);
        var labels = data.Labels.data<long>().ToArray();
        var rows = labels.Select((label, index) => (label, index: (long)index)).GroupBy(x => x.label).OrderBy(g => g.Key)
            .SelectMany(g =>
            {
                var members = g.Select(x => x.index).ToArray();
                random.Shuffle(members);
                return members.Take(perClass);
            }).ToArray();
        return data.Subset(rows);
    }

    /// <summary>The mean ± std table, one line per (attack, defense).</summary>
    public static void SummaryTable(StringBuilder s, IReadOnlyList<StudyRow> rows, string unitsHeader = "units pruned")
    {
        s.AppendLine($"| attack | defense | ACC before | ASR before | RA before | ACC after | ASR after | RA after | DER | {unitsHeader} | wall time (s) | peak RSS (MB) |");
        s.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var group in rows.GroupBy(r => (r.Attack, r.Defense)))
        {
            var g = group.ToList();
            var b = g[0];
            s.AppendLine($"| {group.Key.Attack} | {group.Key.Defense} | {b.AccBefore * 100:0.00} | {b.AsrBefore * 100:0.00} | {b.RaBefore * 100:0.00} | " +
                         $"{Stat(g.Select(r => r.AccAfter * 100))} | {Stat(g.Select(r => r.AsrAfter * 100))} | {Stat(g.Select(r => r.RaAfter * 100))} | " +
                         $"{Stat(g.Select(r => r.Der * 100))} | {Stat(g.Select(r => r.Units), "0.0")} | {Stat(g.Select(r => r.WallSeconds), "0.0")} | " +
                         $"{Stat(g.Select(r => r.PeakRssMb), "0")} |");
        }
    }

    /// <summary>Every run: metrics after, the chosen point, the rule that chose it and the defense's findings.</summary>
    public static void PerSeedTable(StringBuilder s, IReadOnlyList<StudyRow> rows)
    {
        s.AppendLine("| attack | defense | seed | ACC after | ASR after | RA after | chosen x | chosen by | findings |");
        s.AppendLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var r in rows)
        {
            var findings = string.Join(", ", r.Findings.Select(f => $"{f.Key}={f.Value}"));
            s.AppendLine($"| {r.Attack} | {r.Defense} | {r.Seed} | {r.AccAfter * 100:0.00} | {r.AsrAfter * 100:0.00} | {r.RaAfter * 100:0.00} | {r.Units} | {r.Rule} | {findings} |");
        }
    }

    /// <summary>
    /// An ACC-vs-ASR scatter (the seed papers' Fig. 1 view) as SVG: one panel per attack, one marker per defense at
    /// its mean over seeds with ±std whiskers, the undefended model as a cross.
    /// </summary>
    public static string Scatter(IReadOnlyList<StudyRow> rows)
    {
        var attacks = rows.Select(r => r.Attack).Distinct().ToList();
        var defenses = rows.Select(r => r.Defense).Distinct().ToList();
        string[] palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939"];
        const int panel = 320, margin = 70, legendWidth = 190;
        double accMin = Math.Floor(Math.Min(rows.Min(r => r.AccAfter), rows.Min(r => r.AccBefore)) * 20) / 20, accMax = 1.0;
        var width = attacks.Count * (panel + margin) + margin + legendWidth;
        var height = panel + 2 * margin + 10;
        var s = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        s.AppendLine(inv, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">");
        s.AppendLine(inv, $"<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>");
        for (var a = 0; a < attacks.Count; a++)
        {
            double x0 = margin + a * (panel + margin), y0 = margin;
            double X(double asr) => x0 + asr * panel;
            double Y(double acc) => y0 + (accMax - acc) / (accMax - accMin) * panel;
            s.AppendLine(inv, $"<rect x=\"{x0}\" y=\"{y0}\" width=\"{panel}\" height=\"{panel}\" fill=\"none\" stroke=\"#444\"/>");
            s.AppendLine(inv, $"<text x=\"{x0 + panel / 2}\" y=\"{y0 - 10}\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">{attacks[a]}</text>");
            for (var t = 0; t <= 4; t++)
            {
                var asr = t / 4.0;
                var acc = accMin + t / 4.0 * (accMax - accMin);
                s.AppendLine(inv, $"<line x1=\"{X(asr):0.#}\" y1=\"{y0 + panel}\" x2=\"{X(asr):0.#}\" y2=\"{y0}\" stroke=\"#ddd\"/>");
                s.AppendLine(inv, $"<text x=\"{X(asr):0.#}\" y=\"{y0 + panel + 14}\" text-anchor=\"middle\">{asr * 100:0}</text>");
                s.AppendLine(inv, $"<line x1=\"{x0}\" y1=\"{Y(acc):0.#}\" x2=\"{x0 + panel}\" y2=\"{Y(acc):0.#}\" stroke=\"#ddd\"/>");
                s.AppendLine(inv, $"<text x=\"{x0 - 4}\" y=\"{Y(acc) + 4:0.#}\" text-anchor=\"end\">{acc * 100:0.#}</text>");
            }

            s.AppendLine(inv, $"<text x=\"{x0 + panel / 2}\" y=\"{y0 + panel + 30}\" text-anchor=\"middle\">ASR after (%)</text>");
            s.AppendLine(inv, $"<text x=\"{x0 - 36}\" y=\"{y0 + panel / 2}\" text-anchor=\"middle\" transform=\"rotate(-90 {x0 - 36} {y0 + panel / 2})\">ACC after (%)</text>");
            var before = rows.First(r => r.Attack == attacks[a]);
            s.AppendLine(inv, $"<text x=\"{X(before.AsrBefore):0.#}\" y=\"{Y(before.AccBefore) + 5:0.#}\" text-anchor=\"middle\" font-size=\"16\">×</text>");
            for (var d = 0; d < defenses.Count; d++)
            {
                var g = rows.Where(r => r.Attack == attacks[a] && r.Defense == defenses[d]).ToList();
                if (g.Count == 0) continue;
                var (asrMean, asrStd) = MeanStd(g.Select(r => r.AsrAfter));
                var (accMean, accStd) = MeanStd(g.Select(r => r.AccAfter));
                var colour = palette[d % palette.Length];
                s.AppendLine(inv, $"<line x1=\"{X(Math.Max(0, asrMean - asrStd)):0.#}\" y1=\"{Y(accMean):0.#}\" x2=\"{X(Math.Min(1, asrMean + asrStd)):0.#}\" y2=\"{Y(accMean):0.#}\" stroke=\"{colour}\"/>");
                s.AppendLine(inv, $"<line x1=\"{X(asrMean):0.#}\" y1=\"{Y(Math.Max(accMin, accMean - accStd)):0.#}\" x2=\"{X(asrMean):0.#}\" y2=\"{Y(Math.Min(accMax, accMean + accStd)):0.#}\" stroke=\"{colour}\"/>");
                s.AppendLine(inv, $"<circle cx=\"{X(asrMean):0.#}\" cy=\"{Y(accMean):0.#}\" r=\"4.5\" fill=\"{colour}\" fill-opacity=\"0.85\"><title>{defenses[d]}: ACC {accMean * 100:0.0} ± {accStd * 100:0.0}, ASR {asrMean * 100:0.0} ± {asrStd * 100:0.0}</title></circle>");
            }
        }

        double lx = attacks.Count * (panel + margin) + margin, ly = margin;
        s.AppendLine(inv, $"<text x=\"{lx}\" y=\"{ly}\" font-weight=\"bold\">mean ± std over seeds</text>");
        s.AppendLine(inv, $"<text x=\"{lx}\" y=\"{ly + 18}\" font-size=\"16\">×</text><text x=\"{lx + 16}\" y=\"{ly + 18}\">no defense</text>");
        for (var d = 0; d < defenses.Count; d++)
        {
            var y = ly + 36 + d * 17;
            s.AppendLine(inv, $"<circle cx=\"{lx + 5}\" cy=\"{y - 4}\" r=\"4.5\" fill=\"{palette[d % palette.Length]}\"/><text x=\"{lx + 16}\" y=\"{y}\">{defenses[d]}</text>");
        }

        s.AppendLine("</svg>");
        return s.ToString();
    }

    public static string Stat(IEnumerable<double> values, string format = "0.00")
    {
        var list = values.ToList();
        if (list.Count == 1) return list[0].ToString(format, CultureInfo.InvariantCulture); // one seed: no spread to show
        var (mean, std) = MeanStd(list);
        return $"{mean.ToString(format, CultureInfo.InvariantCulture)} ± {std.ToString(format, CultureInfo.InvariantCulture)}";
    }

    /// <summary>Mean and sample standard deviation.</summary>
    private static (double Mean, double Std) MeanStd(IEnumerable<double> values)
    {
        var list = values.ToList();
        var mean = list.Average();
        var std = list.Count > 1 ? Math.Sqrt(list.Sum(v => (v - mean) * (v - mean)) / (list.Count - 1)) : 0;
        return (mean, std);
    }

    private static string Format(object value) => value switch
    {
        double d => d.ToString("0.###", CultureInfo.InvariantCulture),
        float f => f.ToString("0.###", CultureInfo.InvariantCulture),
        _ => Convert.ToString(value, CultureInfo.InvariantCulture) ?? string.Empty,
    };

    private static void ResetPeakRss()
    {
        try { File.WriteAllText("/proc/self/clear_refs", "5"); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private static long PeakRss()
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
    }
}
