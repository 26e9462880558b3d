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
using WebDefense.Core.Scanning;
using WebDefense.Core.Training;

namespace WebDefense.Experiments;

/// <summary>
/// The backdoor scan's evidence (docs/results/scan.md): detection on attack-lab Fashion-MNIST models (BadNets, Blended, SIG
/// and clean ones, several seeds) and on model files given on the command line (TorchScript plus a clean .npz), and
/// purification without backdoor samples, blind against scan-assisted. Every result is one JSON line in the log, so a
/// run can be stopped and resumed; --report-only writes the report from the log.
/// </summary>
internal static class ScanCommand
{
    private sealed record Row(string Kind, string Model, int? TrueTarget, string Defense, string Mode, int Seed, bool? Suspected, int? Named,
        string Flagged, double? TargetIndex, double? TargetNorm, double? Median, double? EstimatedAsr, double? Acc, double? Asr, double? AccAfter, double? AsrAfter,
        string? Outcome, double Seconds);

    public static void Run(ExperimentOptions options)
    {
        var log = options.Text("log", "artifacts/experiments/scan.jsonl");
        Directory.CreateDirectory(Path.GetDirectoryName(log)!);
        var done = File.Exists(log) ? File.ReadAllLines(log).Select(l => JsonSerializer.Deserialize<Row>(l)!).ToList() : [];
        bool Has(string kind, string model, string defense, string mode, int seed) =>
            done.Any(r => r.Kind == kind && r.Model == model && r.Defense == defense && r.Mode == mode && r.Seed == seed);
        void Append(Row row)
        {
            done.Add(row);
            File.AppendAllText(log, JsonSerializer.Serialize(row) + "\n");
            Console.WriteLine($"{row.Kind} {row.Model} {row.Defense}/{row.Mode} seed {row.Seed}: named {row.Named?.ToString(CultureInfo.InvariantCulture) ?? "none"} (true {row.TrueTarget?.ToString(CultureInfo.InvariantCulture) ?? "none"}), " +
                              $"index {row.TargetIndex:0.00}, est. ASR {row.EstimatedAsr:P1}; ACC {row.Acc:P1}→{row.AccAfter:P1}, ASR {row.Asr:P1}→{row.AsrAfter:P1} {row.Outcome} in {row.Seconds:0} s");
        }

        if (options.Int("report-only", 0) == 0)
        {
            if (options.Text("model", "") is { Length: > 0 } file)
            {
                RunOnFile(options, file, Has, Append);
            }
            else
            {
                RunFashionMnist(options, Has, Append);
            }
        }

        if (options.Text("out", "") is { Length: > 0 } outPath)
        {
            File.WriteAllText(outPath, Report(done, options));
            Console.WriteLine($"wrote {outPath}");
        }
    }

    private static void RunFashionMnist(ExperimentOptions options, Func<string, string, string, string, int, bool> has, Action<Row> append)
    {
        var seeds = options.Text("seed-list", "0,1,2").Split(',').Select(int.Parse).ToArray();
        var attacks = options.Text("attacks", "badnets,blended,sig,clean").Split(',');
        var epochs = options.Int("epochs", 4);
        var trainSize = options.Int("train-size", 20000);
        var perClass = options.Int("per-class", 50);
        var defenses = options.Text("defenses", "").Split(',', StringSplitOptions.RemoveEmptyEntries);
        var cache = options.Text("cache", "artifacts/experiments");
        using var all = FashionMnist.Train();
        using var train = all.Subset(Enumerable.Range(0, trainSize).Select(i => (long)i).ToArray());
        using var test = FashionMnist.Test();
        foreach (var attackName in attacks)
        {
            foreach (var seed in seeds)
            {
                var name = $"{attackName}-fmnist-smallcnn-n{trainSize}-e{epochs}";
                var attack = attackName switch
                {
                    "badnets" => AttackSpec.BadNets,
                    "blended" => AttackSpec.Blended,
                    "sig" => AttackSpec.Sig(0.1),
                    "clean" => null,
                    "demo" => AttackSpec.BadNets,
                    _ => throw new ArgumentException($"unknown attack {attackName}"),
                };
                // "demo": the demo model of demo/ (BadNets, 8 epochs on all 60,000 images), one model, the seed picks the clean data.
                if (attackName == "demo") name = "demo-fmnist-smallcnn-badnets";
                var path = attackName == "demo" ? "demo/fmnist-smallcnn-badnets.pt" : Path.Combine(cache, $"{name}-s{seed}.pt");
                Directory.CreateDirectory(cache);
                if (!File.Exists(path))
                {
                    Console.WriteLine($"training {name} seed {seed}…");
                    var options2 = AttackLab.Recipe(epochs, InputSpec.Grey28);
                    using var trained = attack is null ? AttackLab.TrainClean("smallcnn", 10, InputSpec.Grey28, train, options2, seed)
                        : AttackLab.Train("smallcnn", 10, InputSpec.Grey28, train, attack, options2, seed);
                    ModelLoader.Save(trained.Model, ModelFileFormat.PyTorchStateDict, path);
                }

                using var loaded = ModelLoader.Load(path, new ModelDeclaration("smallcnn", 10, InputSpec.Grey28));
                using var clean = DefenseStudy.BalancedSample(test.Subset(Enumerable.Range(0, 5000).Select(i => (long)i).ToArray()), perClass, seed + 1000);
                using var heldTest = test.Subset(Enumerable.Range(5000, 5000).Select(i => (long)i).ToArray());
                var trigger = attack?.Trigger;
                using var bd = trigger is null ? null : BackdoorTestSet.Build(heldTest, trigger, 0);
                Evaluate(loaded.Classifier, name, attack is null ? null : 0, clean, heldTest, bd?.Data, seed, defenses, has, append);
            }
        }
    }

    /// <summary>
    /// --model FILE (any checkpoint the loader reads; --architecture when it cannot tell) --clean F [--test F --backdoor-test F]
    /// --target N (omit for a clean model) --name NAME [--input 3,32,32 --mean a,b,c --std a,b,c].
    /// </summary>
    private static void RunOnFile(ExperimentOptions options, string file, Func<string, string, string, string, int, bool> has, Action<Row> append)
    {
        var shape = options.Text("input", "3,32,32").Split(',').Select(int.Parse).ToArray();
        var architecture = options.Text("architecture", "") is { Length: > 0 } a ? a : null;
        float[]? Floats(string key) => options.Text(key, "") is { Length: > 0 } v ? v.Split(',').Select(x => float.Parse(x, CultureInfo.InvariantCulture)).ToArray() : null;
        var input = InputSpec.Create(shape[0], shape[1], shape[2], Floats("mean"), Floats("std"));
        using var loaded = ModelLoader.Load(file, new ModelDeclaration(architecture, options.Int("classes", 10), input));
        using var clean = DatasetReader.Read(options.Text("clean", ""));
        using var test = options.Text("test", "") is { Length: > 0 } t ? DatasetReader.Read(t) : null;
        using var bd = options.Text("backdoor-test", "") is { Length: > 0 } b ? DatasetReader.Read(b) : null;
        int? target = options.Int("target", -1) is var tl && tl >= 0 ? tl : null;
        var defenses = options.Text("defenses", "").Split(',', StringSplitOptions.RemoveEmptyEntries);
        foreach (var seed in options.Text("seed-list", "0").Split(',').Select(int.Parse))
        {
            Evaluate(loaded.Classifier, options.Text("name", Path.GetFileNameWithoutExtension(file)), target, clean.Data, test?.Data, bd?.Data, seed, defenses, has, append);
        }
    }

    private static void Evaluate(Classifier model, string name, int? target, ImageDataset clean, ImageDataset? test, ImageDataset? backdoorTest, int seed,
        IReadOnlyList<string> defenses, Func<string, string, string, string, int, bool> has, Action<Row> append)
    {
        var kind = target is null ? "clean" : "backdoored";
        var before = test is null ? null : Evaluator.Evaluate(model, test, backdoorTest, target ?? 0);
        if (!has(kind, name, "scan", "scan", seed))
        {
            var watch = Stopwatch.StartNew();
            var scan = BackdoorScan.Run(model, clean, DefenseParameters.Resolve(DefenseCatalog.Scan.Parameters), new Random(seed), NullDefenseObserver.Instance, CancellationToken.None);
            var truth = target is { } t ? scan.Labels[t] : null;
            append(new Row(kind, name, target, "scan", "scan", seed, scan.Suspected, scan.TargetLabel, string.Join(' ', scan.FlaggedLabels),
                truth?.AnomalyIndex, truth?.MaskNorm, scan.Median, scan.EstimatedAsr, before?.Acc, before?.Asr, null, null, null, watch.Elapsed.TotalSeconds));
        }

        if (target is null || test is null) return;
        foreach (var defense in defenses)
        {
            foreach (var (mode, scanOn) in new[] { ("blind", false), ("scan-assisted", true) })
            {
                // Without backdoor samples and without the scan, a defense that needs them (Grad-Prune) cannot run at all.
                if (has(kind, name, defense, mode, seed) || (!scanOn && DefenseCatalog.Get(defense).Needs.HasFlag(DefenseNeeds.BackdoorSamples))) continue;
                DefenseResult result;
                try
                {
                    result = DefenseRunner.Run(new DefenseRequest
                    {
                        Defense = DefenseCatalog.Get(defense), Model = model, CleanData = clean, TargetLabel = target, Seed = seed,
                        TestSet = test, BackdoorTestSet = backdoorTest, Parameters = new Dictionary<string, object> { [ScanAssistance.ScanParameter] = scanOn },
                    });
                }
                catch (DefenseInputException e) when (scanOn)
                {
                    // A defense that needs backdoor samples refuses when the scan flagged nothing: recorded as such.
                    Console.WriteLine($"{name} {defense}/{mode} seed {seed}: refused: {e.Message}");
                    append(new Row(kind, name, target, defense, mode, seed, false, null, "", null, null, null, null, before?.Acc, before?.Asr, null, null, "refused (scan flagged nothing)", 0));
                    continue;
                }

                using var disposeResult = result;
                append(new Row(kind, name, target, defense, mode, seed, result.Scan?.Suspected, result.Scan?.TargetLabel, string.Join(' ', result.Scan?.FlaggedLabels ?? []),
                    null, null, null, result.EstimatedAsrBefore, result.Before?.Acc, result.Before?.Asr, result.After?.Acc, result.After?.Asr, result.Outcome.Outcome,
                    result.WallTime.TotalSeconds + (result.Scan?.Seconds ?? 0)));
            }
        }
    }

    private static string Report(IReadOnlyList<Row> rows, ExperimentOptions options)
    {
        static string P(double? v) => v is { } x ? (x * 100).ToString("0.0", CultureInfo.InvariantCulture) : "–";
        static string N(double? v, string f = "0.00") => v?.ToString(f, CultureInfo.InvariantCulture) ?? "–";
        var s = new StringBuilder();
        s.AppendLine("# The backdoor scan: detection and scan-assisted purification").AppendLine();
        s.AppendLine("Written by `dotnet run --project tools/Experiments -c Release -- scan … --out docs/results/scan.md` from the log of every run");
        s.AppendLine("(`artifacts/experiments/scan.jsonl`); the commands that filled the log are listed under \"How these numbers were made\".");
        s.AppendLine("Scan settings: the defaults (300 steps per label, batch 32, log-scale anomaly index > 2 and mask ≤ 0.25 × median,");
        s.AppendLine("20% of the clean data held out); see [docs/defenses/scan.md](../defenses/scan.md). \"est. ASR\" is the named label's reconstructed");
        s.AppendLine("trigger on the held-out clean images; ACC/ASR are the model's on the test sets with the real trigger (reporting only).");
        s.AppendLine("Times are wall seconds on the 2-core development machine while other work shared it.").AppendLine();
        s.AppendLine("## Detection").AppendLine();
        s.AppendLine("| model | kind | seed | true target | named | flagged | anomaly index of the true target | its mask (px) | median mask (px) | est. ASR | ACC | ASR (real trigger) | seconds |");
        s.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var r in rows.Where(r => r.Defense == "scan").OrderBy(r => r.Kind).ThenBy(r => r.Model).ThenBy(r => r.Seed))
        {
            s.AppendLine($"| {r.Model} | {r.Kind} | {r.Seed} | {r.TrueTarget?.ToString(CultureInfo.InvariantCulture) ?? "–"} | {r.Named?.ToString(CultureInfo.InvariantCulture) ?? "none"} | {(r.Flagged.Length > 0 ? r.Flagged : "–")} | " +
                         $"{N(r.TargetIndex)} | {N(r.TargetNorm, "0.0")} | {N(r.Median, "0.0")} | {P(r.EstimatedAsr)} | {P(r.Acc)} | {P(r.Asr)} | {r.Seconds:0} |");
        }

        var scans = rows.Where(r => r.Defense == "scan").ToList();
        var backdoored = scans.Where(r => r.Kind == "backdoored").ToList();
        var clean = scans.Where(r => r.Kind == "clean").ToList();
        s.AppendLine().AppendLine($"True target named: {backdoored.Count(r => r.Named == r.TrueTarget)} of {backdoored.Count} backdoored models; " +
                                  $"clean models flagged: {clean.Count(r => r.Suspected == true)} of {clean.Count}.").AppendLine();

        var runs = rows.Where(r => r.Defense != "scan").ToList();
        if (runs.Count > 0)
        {
            s.AppendLine("## Purification without backdoor samples: blind against scan-assisted").AppendLine();
            s.AppendLine("| model | defense | mode | seed | scan named | ACC before → after | ASR before → after | outcome | seconds |");
            s.AppendLine("|---|---|---|---|---|---|---|---|---|");
            foreach (var r in runs.OrderBy(r => r.Model).ThenBy(r => r.Defense).ThenBy(r => r.Seed).ThenBy(r => r.Mode))
            {
                s.AppendLine($"| {r.Model} | {r.Defense} | {r.Mode} | {r.Seed} | {r.Named?.ToString(CultureInfo.InvariantCulture) ?? "–"} | {P(r.Acc)} → {P(r.AccAfter)} | {P(r.Asr)} → {P(r.AsrAfter)} | {r.Outcome} | {r.Seconds:0} |");
            }

            s.AppendLine().AppendLine("| defense | mode | runs | mean ACC loss (points) | mean ASR after | ASR ≤ 10% at ≤ 3 points of ACC |");
            s.AppendLine("|---|---|---|---|---|---|");
            foreach (var g in runs.GroupBy(r => (r.Defense, r.Mode)).OrderBy(g => g.Key.Defense).ThenBy(g => g.Key.Mode))
            {
                var ok = g.Count(r => r.AsrAfter <= 0.10 && r.Acc - r.AccAfter <= 0.03);
                s.AppendLine($"| {g.Key.Defense} | {g.Key.Mode} | {g.Count()} | {N(g.Average(r => (r.Acc - r.AccAfter) * 100), "0.0")} | {P(g.Average(r => r.AsrAfter))} | {ok} of {g.Count()} |");
            }
        }

        return s.ToString();
    }
}
