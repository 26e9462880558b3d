using WebDefense.Core.Data;
using WebDefense.Core.Data.Triggers;
using WebDefense.Core.Defenses;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Models;

namespace WebDefense.Experiments;

/// <summary>Runs one defense once on the demo model and prints its whole trajectory (for looking into a defense).</summary>
internal static class TraceCommand
{
    private sealed class Printer : IDefenseObserver
    {
        public void StepStarted(int index, int count, string step) => Console.WriteLine($"== step {index + 1}/{count}: {step}");
        public void Progress(double fractionOfStep, string message) { }
        public void Point(TrajectoryPoint p) => Console.WriteLine($"  [{p.Phase}] {p.XLabel} {p.X}: acc {p.ValAcc:0.###} asr {p.ValAsr:0.###} loss {p.Loss:0.####} {p.Note}");
        public void Log(string message) => Console.WriteLine($"  log: {message}");
    }

    public static void Run(ExperimentOptions options)
    {
        if (options.Text("clean", "") is { Length: > 0 } cleanPath)
        {
            RunOnFiles(options, cleanPath);
            return;
        }

        var defense = DefenseCatalog.Get(options.Text("defense", "rnp"));
        var perClass = options.Int("per-class", 50);
        using var loaded = ModelLoader.Load(options.Text("model", "demo/fmnist-smallcnn-badnets.pt"), new ModelDeclaration("smallcnn", 10, InputSpec.Grey28));
        using var train = FashionMnist.Train();
        using var test = FashionMnist.Test();
        var trigger = PatchTrigger.BadNets;
        using var bd = BackdoorTestSet.Build(test, trigger, 0);
        using var clean = DefenseStudy.BalancedSample(train, perClass, options.Int("seed", 0) + 1000);
        using var triggered = trigger.ApplyWithTrueLabels(clean);
        using var result = DefenseRunner.Run(new DefenseRequest
        {
            Defense = defense, Model = loaded.Classifier, CleanData = clean, TargetLabel = 0, Seed = options.Int("seed", 0),
            Backdoor = new BackdoorSamples(triggered, true), // RNP shows it as validation ASR only
            TestSet = test, BackdoorTestSet = bd.Data, Observer = new Printer(), Parameters = options.Parameters(), Device = ExperimentDevice.Current,
        });
        Print(result);
    }

    /// <summary>
    /// Any model file on any data: --model FILE (TorchScript, or a state dict with --architecture), --input C,H,W,
    /// --classes N, --clean/--test/--backdoor-test data files (the backdoor test set with TRUE labels), --target N, and
    /// optionally --trigger JSON (a trigger spec as the API takes it) for backdoor samples made from the clean set.
    /// </summary>
    private static void RunOnFiles(ExperimentOptions options, string cleanPath)
    {
        var defense = DefenseCatalog.Get(options.Text("defense", "rnp"));
        var shape = options.Text("input", "3,32,32").Split(',').Select(int.Parse).ToArray();
        var architecture = options.Text("architecture", "") is { Length: > 0 } a ? a : null;
        var declaration = new ModelDeclaration(architecture, options.Int("classes", 10), InputSpec.Create(shape[0], shape[1], shape[2]));
        using var loaded = ModelLoader.Load(options.Text("model", ""), declaration);
        using var clean = DatasetReader.Read(cleanPath);
        using var test = DatasetReader.Read(options.Text("test", ""));
        using var bd = DatasetReader.Read(options.Text("backdoor-test", ""));
        // --trigger JSON: the defender's triggered copies of the clean set (true labels), so the sweep shows validation ASR.
        using var triggered = options.Text("trigger", "") is { Length: > 0 } json
            ? TriggerSpec.FromJson(json).ApplyWithTrueLabels(clean.Data)
            : null;
        using var result = DefenseRunner.Run(new DefenseRequest
        {
            Defense = defense, Model = loaded.Classifier, CleanData = clean.Data, TargetLabel = options.Int("target", 0), Seed = options.Int("seed", 0),
            Backdoor = triggered is null ? null : new BackdoorSamples(triggered, true),
            TestSet = test.Data, BackdoorTestSet = bd.Data, Observer = new Printer(), Parameters = options.Parameters(), Device = ExperimentDevice.Current,
        });
        Print(result);
    }

    private static void Print(DefenseResult result) =>
        Console.WriteLine($"before {result.Before} after {result.After}; chosen {result.Chosen}; {string.Join(", ", result.Findings.Select(f => $"{f.Key}={f.Value}"))}; {result.WallTime.TotalSeconds:0.0}s");
}
