using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using WebDefense.Core.Data;
using WebDefense.Core.Data.Triggers;
using WebDefense.Core.Defenses;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Evaluation;
using WebDefense.Core.Models;
using WebDefense.Core.Models.Zoo;
using WebDefense.Core.Training;

namespace WebDefense.Experiments;

/// <summary>One AdvrBD run of the study (fractions, not percentages), as kept in its JSON-lines log.</summary>
internal sealed record AdvrBdRow(
    string Attack, double Ratio, int Seed, int Poisoned, int Suspected, double Precision, double Recall,
    double Acc, double Asr, double Ra, double UndefendedAcc, double UndefendedAsr,
    double DefenseSeconds, double UndefendedSeconds, Dictionary<string, string> Findings, List<Dictionary<string, double>> Enhancement);

/// <summary>Plain training on the clean (never poisoned) subset with the same recipe: ACC, and each trigger's ASR on it.</summary>
internal sealed record CleanRow(int Seed, double Acc, Dictionary<string, double> Asr, double Seconds);

/// <summary>
/// Issue 7's evidence: AdvrBD on Fashion-MNIST (SmallCnn) poisoned by BadNets, Blended and SIG at 5% and 10%, over
/// seeds, against the undefended model (same recipe, same poisoned set) and a model trained on the clean subset only.
/// Every finished run is appended to a JSON-lines log, so an interrupted study resumes where it stopped.
/// </summary>
internal static class AdvrBdCommand
{
    private static readonly (string Name, Func<double, AttackSpec> Attack)[] Attacks =
    [
        ("badnets", r => AttackSpec.BadNets with { PoisonRatio = r }),
        ("blended", r => AttackSpec.Blended with { PoisonRatio = r }),
        ("sig", AttackSpec.Sig),
    ];

    private sealed class Printer : IDefenseObserver
    {
        public void StepStarted(int index, int count, string step) => Console.WriteLine($"  == step {index + 1}/{count}: {step} ({DateTime.Now:HH:mm:ss})");
        public void Progress(double fractionOfStep, string message) { }
        public void Point(TrajectoryPoint p)
        {
            if (p.Phase is "undefended") return;
            var values = p.Values is null ? "" : string.Join(" ", p.Values.Select(v => $"{v.Key}={v.Value.ToString("0.####", CultureInfo.InvariantCulture)}"));
            Console.WriteLine($"    [{p.Phase}] {p.XLabel} {p.X}: val {p.ValAcc:0.####} loss {p.Loss:0.####} {values} {p.Note}");
        }

        public void Log(string message) => Console.WriteLine($"    log: {message}");
    }

    public static void Run(ExperimentOptions options)
    {
        var seeds = options.Text("seed-list", "0,1,2").Split(',').Select(int.Parse).ToList();
        var ratios = options.Text("ratios", "0.05,0.1").Split(',').Select(s => double.Parse(s, CultureInfo.InvariantCulture)).ToList();
        var attackNames = options.Text("attacks", "badnets,blended,sig").Split(',');
        var perClass = options.Int("per-class", 2000);
        var parameters = options.Parameters();
        var cache = options.Text("cache", "artifacts/experiments");
        var tag = options.Text("tag", $"pc{perClass}");
        var log = Path.Combine(cache, $"advrbd-{tag}.jsonl");
        var output = options.Text("out", "");
        var defense = new AdvrBdDefense();

        using var full = FashionMnist.Train();
        using var train = DefenseStudy.BalancedSample(full, perClass, 0);
        using var test = FashionMnist.Test();
        var resolved = DefenseParameters.Resolve(defense.Parameters, parameters);
        var recipe = defense.Recipe(resolved, InputSpec.Grey28);
        Directory.CreateDirectory(cache);
        var rows = File.Exists(log) ? File.ReadLines(log).Where(l => l.StartsWith("{\"Attack\"", StringComparison.Ordinal)).Select(l => JsonSerializer.Deserialize<AdvrBdRow>(l)!).ToList() : [];
        var cleanRows = File.Exists(log) ? File.ReadLines(log).Where(l => l.StartsWith("{\"Seed\"", StringComparison.Ordinal)).Select(l => JsonSerializer.Deserialize<CleanRow>(l)!).ToList() : [];
        var backdoorTests = Attacks.ToDictionary(a => a.Name, a => BackdoorTestSet.Build(test, a.Attack(0.1).Trigger, 0));
        Classifier Create() => ModelZoo.CreateClassifier("smallcnn", 10, InputSpec.Grey28);
        try
        {
            foreach (var seed in options.Int("report-only", 0) == 1 ? [] : seeds)
            {
                if (!cleanRows.Any(c => c.Seed == seed))
                {
                    var watch = Stopwatch.StartNew();
                    using var clean = TrainingDefenseRunner.TrainWithoutDefense(Create, train, recipe, seed);
                    var row = new CleanRow(seed, Evaluator.Accuracy(clean, test),
                        backdoorTests.ToDictionary(b => b.Key, b => Evaluator.Evaluate(clean, test, b.Value.Data, 0).Asr!.Value), watch.Elapsed.TotalSeconds);
                    cleanRows.Add(row);
                    File.AppendAllText(log, JsonSerializer.Serialize(row) + "\n");
                    Console.WriteLine($"clean-only seed {seed}: ACC {row.Acc:P2}, {row.Seconds:0}s");
                }

                foreach (var (name, attackFor) in Attacks.Where(a => attackNames.Contains(a.Name)))
                {
                    foreach (var ratio in ratios)
                    {
                        if (rows.Any(r => r.Attack == name && r.Ratio == ratio && r.Seed == seed)) continue;
                        var attack = attackFor(ratio);
                        using var poisoned = Poisoning.Poison(train, attack.Trigger, attack.TargetLabel, attack.PoisonRatio, attack.CleanLabel, seed);
                        Console.WriteLine($"{name} {ratio:P0} seed {seed}: {poisoned.PoisonedIndices.Count} poisoned of {train.Count} ({DateTime.Now:HH:mm:ss})");
                        using var result = TrainingDefenseRunner.Run(new TrainingDefenseRequest
                        {
                            Defense = defense, Architecture = "smallcnn", NumClasses = 10, Input = InputSpec.Grey28, Train = poisoned.Data,
                            Truth = new PoisonTruth(poisoned.PoisonFlags()), Parameters = parameters, Seed = seed,
                            TestSet = test, BackdoorTestSet = backdoorTests[name].Data, TargetLabel = 0, Observer = new Printer(),
                        });
                        var d = result.Detection!;
                        var row = new AdvrBdRow(name, ratio, seed, d.Poisoned, d.Suspected, d.Precision, d.Recall,
                            result.After!.Acc, result.After.Asr!.Value, result.After.Ra!.Value, result.Undefended!.Acc, result.Undefended.Asr!.Value,
                            result.WallTime.TotalSeconds, result.UndefendedWallTime!.Value.TotalSeconds,
                            result.Findings.ToDictionary(f => f.Key, f => f.Value is int[] counts ? string.Join(' ', counts) : Convert.ToString(f.Value, CultureInfo.InvariantCulture) ?? ""),
                            result.Trajectory.Where(p => p.Phase is "partition" or "enhance" && p.Values is not null).Select(p => p.Values!.ToDictionary(v => v.Key, v => v.Value)).ToList());
                        rows.Add(row);
                        File.AppendAllText(log, JsonSerializer.Serialize(row) + "\n");
                        Console.WriteLine($"{name} {ratio:P0} seed {seed}: recall {d.Recall:P2} precision {d.Precision:P2} ({d.Suspected} suspected); " +
                                          $"ACC {row.UndefendedAcc:P2}→{row.Acc:P2} ASR {row.UndefendedAsr:P2}→{row.Asr:P2}; {row.DefenseSeconds:0}s + {row.UndefendedSeconds:0}s");
                    }
                }
            }
        }
        finally
        {
            foreach (var b in backdoorTests.Values) b.Dispose();
        }

        if (output.Length > 0)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(output)!);
            File.WriteAllText(output, Report(rows, cleanRows, options, perClass, resolved, recipe));
            Console.WriteLine($"wrote {output}");
        }
    }

    private static string Report(List<AdvrBdRow> rows, List<CleanRow> cleanRows, ExperimentOptions options, int perClass, DefenseParameters parameters, SgdOptions recipe)
    {
        var inv = CultureInfo.InvariantCulture;
        var s = new StringBuilder();
        s.AppendLine("# AdvrBD on Fashion-MNIST (SmallCnn): BadNets, Blended, SIG at 5% and 10% poisoning");
        s.AppendLine();
        s.AppendLine(inv, $"Generated {DateTime.UtcNow:yyyy-MM-dd} from the log of:");
        s.AppendLine();
        s.AppendLine("```bash");
        s.AppendLine("dotnet run --project tools/Experiments -c Release -- advrbd " + options.Original.Replace(" --report-only 1", "").Replace("--report-only 1 ", "").Trim());
        s.AppendLine("```");
        s.AppendLine();
        s.AppendLine(inv, $"Machine: {Environment.ProcessorCount} CPU cores shared with other work, no GPU; TorchSharp 0.107 / libtorch 2.10 CPU.");
        s.AppendLine();
        s.AppendLine("## Setup");
        s.AppendLine();
        s.AppendLine($"- Untrusted training set: {perClass} images per class ({(perClass * 10).ToString("N0", inv)}) drawn once (seed 0) from the 60,000 Fashion-MNIST training images, " +
                          "then poisoned by our attack lab with the run's seed: BadNets (3×3 white patch bottom-right) and Blended (seeded noise image, α = 0.2) " +
                          "dirty-label, SIG (Δ = 40, f = 6) clean-label; target 0; the ratio is the share of the whole training set " +
                          $"(SIG 10% = {perClass} images = every class-0 image, SIG 5% = half of them).");
        s.AppendLine("- Test: the 10,000 Fashion-MNIST test images (ACC) and the 9,000 non-target ones with the trigger (ASR, RA). Nothing in AdvrBD sees them.");
        s.AppendLine("- Undefended: the same architecture and recipe trained on the same poisoned set (the runner's comparison model). Clean-only: the same recipe on " +
                     "the subset before poisoning (one model per seed; its ASR column is how often a clean model maps each trigger to class 0).");
        s.AppendLine("- Recall = poisoned samples among the suspected / all poisoned; precision = poisoned among the suspected. ± is the sample standard deviation over seeds.");
        s.AppendLine();
        s.AppendLine("## Results (mean ± std over seeds; percentages)");
        s.AppendLine();
        s.AppendLine("| attack | poisoned | seeds | recall | precision | suspected | ACC | ASR | undefended ACC | undefended ASR | clean-only ACC | AdvrBD wall time (s) | undefended wall time (s) |");
        s.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        var cleanBySeed = cleanRows.GroupBy(c => c.Seed).Select(g => g.First()).ToList();
        var cleanAcc = cleanBySeed.Count > 0 ? DefenseStudy.Stat(cleanBySeed.Select(c => c.Acc * 100)) : "n/a";
        foreach (var g in rows.OrderBy(r => Array.FindIndex(Attacks, a => a.Name == r.Attack)).ThenBy(r => r.Ratio).GroupBy(r => (r.Attack, r.Ratio)))
        {
            var list = g.ToList();
            s.AppendLine(inv, $"| {g.Key.Attack} | {g.Key.Ratio * 100:0}% ({list[0].Poisoned}) | {list.Count} | {DefenseStudy.Stat(list.Select(r => r.Recall * 100))} | {DefenseStudy.Stat(list.Select(r => r.Precision * 100))} | " +
                             $"{DefenseStudy.Stat(list.Select(r => (double)r.Suspected), "0")} | {DefenseStudy.Stat(list.Select(r => r.Acc * 100))} | {DefenseStudy.Stat(list.Select(r => r.Asr * 100))} | " +
                             $"{DefenseStudy.Stat(list.Select(r => r.UndefendedAcc * 100))} | {DefenseStudy.Stat(list.Select(r => r.UndefendedAsr * 100))} | {cleanAcc} | " +
                             $"{DefenseStudy.Stat(list.Select(r => r.DefenseSeconds), "0")} | {DefenseStudy.Stat(list.Select(r => r.UndefendedSeconds), "0")} |");
        }

        s.AppendLine();
        s.AppendLine("## Clean-only training (the same recipe on the never-poisoned subset)");
        s.AppendLine();
        s.AppendLine("| seed | ACC | BadNets trigger → 0 | Blended trigger → 0 | SIG trigger → 0 | wall time (s) |");
        s.AppendLine("|---|---|---|---|---|---|");
        foreach (var c in cleanRows.GroupBy(c => c.Seed).Select(g => g.First()).OrderBy(c => c.Seed))
        {
            s.AppendLine(inv, $"| {c.Seed} | {c.Acc * 100:0.00} | {c.Asr.GetValueOrDefault("badnets") * 100:0.00} | {c.Asr.GetValueOrDefault("blended") * 100:0.00} | {c.Asr.GetValueOrDefault("sig") * 100:0.00} | {c.Seconds:0} |");
        }

        s.AppendLine();
        s.AppendLine("## Per seed");
        s.AppendLine();
        s.AppendLine("| attack | poisoned | seed | recall | precision | suspected | poisoned kept | ACC | ASR | RA | undefended ACC | undefended ASR | D_c poisoned / size, iterations 1… | recall per iteration | wall time (s) |");
        s.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var r in rows.OrderBy(r => Array.FindIndex(Attacks, a => a.Name == r.Attack)).ThenBy(r => r.Ratio).ThenBy(r => r.Seed))
        {
            var iterations = r.Enhancement.Where(v => !v.ContainsKey("kl_threshold")).ToList(); // the partition point carries the KL statistics
            var dc = string.Join(" ", iterations.Select(v => $"{v.GetValueOrDefault("poisoned_in_likely_clean"):0}/{v.GetValueOrDefault("likely_clean"):0}"));
            var recalls = string.Join(" ", iterations.Select(v => (v.GetValueOrDefault("recall") * 100).ToString("0.0", inv)));
            s.AppendLine(inv, $"| {r.Attack} | {r.Ratio * 100:0}% | {r.Seed} | {r.Recall * 100:0.00} | {r.Precision * 100:0.00} | {r.Suspected} | {r.Findings.GetValueOrDefault("poisoned_kept_for_training")} | " +
                             $"{r.Acc * 100:0.00} | {r.Asr * 100:0.00} | {r.Ra * 100:0.00} | {r.UndefendedAcc * 100:0.00} | {r.UndefendedAsr * 100:0.00} | {dc} | {recalls} | {r.DefenseSeconds:0} |");
        }

        s.AppendLine();
        s.AppendLine("Parameters: " + string.Join(", ", parameters.Values.Select(v => $"`{v.Key}` = {Convert.ToString(v.Value, inv)}")) + ".");
        s.AppendLine(inv, $"Recipe of the final, undefended and clean-only models: SGD lr {recipe.LearningRate}, momentum 0.9, wd 5e-4, batch {recipe.BatchSize}, cosine over {recipe.Epochs} epochs, {perClass} training images per class.");
        return s.ToString();
    }
}
