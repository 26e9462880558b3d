using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using WebDefense.Core.Data;
using WebDefense.Core.Data.Triggers;
using WebDefense.Core.Evaluation;
using WebDefense.Core.Models;
using WebDefense.Core.Models.Zoo;
using WebDefense.Core.Runtime;
using WebDefense.Core.Training;

namespace WebDefense.Experiments;

/// <summary>What one training epoch of a CIFAR-10 victim gave, as kept in its JSON-lines training log.</summary>
internal sealed record Cifar10Epoch(string Attack, int Epoch, double Loss, double TrainAccuracy, double LearningRate,
    double MonitorAcc, double MonitorAsr, double Seconds);

/// <summary>
/// Issue 18's study at the papers' scale: ResNet-18 (our zoo's torchvision layout) trained by the attack lab on all
/// 50,000 CIFAR-10 training images of ../shared/data/cifar10-jpeg (BadNets or Blended, 10% dirty-label, target 0),
/// then the papers' defenses on it. Phases: <c>--phase train --attack badnets</c> writes the victim to --dir;
/// <c>--phase defend</c> runs the defenses (resumable log); <c>--phase report</c> writes the results file.
/// </summary>
internal static class Cifar10Command
{
    public const string Architecture = "resnet18";

    public static readonly (string Name, AttackSpec Attack)[] Attacks = [("badnets", AttackSpec.BadNets), ("blended", AttackSpec.Blended)];

    public static void Run(ExperimentOptions options)
    {
        var dir = options.Text("dir", "artifacts/cifar10");
        Directory.CreateDirectory(dir);
        switch (options.Text("phase", "train"))
        {
            case "train":
                Train(options, dir);
                break;
            case "defend":
            case "report":
                Cifar10Study.Run(options, dir);
                break;
            default:
                throw new ArgumentException("--phase is train, defend or report");
        }
    }

    public static string Data(string split) =>
        Path.Combine("..", "shared", "data", "cifar10-jpeg", $"cifar10-jpeg-{split}.tar.gz");

    public static string ModelPath(string dir, string attack, int epochs) => Path.Combine(dir, $"{Architecture}-{attack}-e{epochs}.pt");

    public static ModelDeclaration Declaration => new(Architecture, 10, InputSpec.Cifar10);

    /// <summary>
    /// The attack lab's recipe (SGD momentum 0.9, wd 5e-4, batch 128, cosine schedule, random crop 32 pad 4 and
    /// horizontal flip) over --epochs; after each epoch ACC and ASR on a fixed 2,000-image slice of the test set
    /// (the attacker watching its own model, not a defense choosing anything) go to the training log.
    /// </summary>
    private static void Train(ExperimentOptions options, string dir)
    {
        var name = options.Text("attack", "badnets");
        var attack = Attacks.Single(a => a.Name == name).Attack;
        var epochs = options.Int("epochs", 12);
        var lr = options.Number("lr", 0.05);
        var seed = options.Int("seed", 0);
        var log = Path.Combine(dir, $"{Architecture}-{name}-e{epochs}.train.jsonl");
        var watch = Stopwatch.StartNew();
        using var train = DatasetReader.Read(Data("train"));
        using var test = DatasetReader.Read(Data("test"));
        Console.WriteLine($"read {train.Data.Count} training and {test.Data.Count} test images in {watch.Elapsed.TotalSeconds:0}s");
        using var monitor = DefenseStudy.BalancedSample(test.Data, 200, 7);
        using var monitorBd = BackdoorTestSet.Build(monitor, attack.Trigger, attack.TargetLabel);
        using var poisoned = Poisoning.Poison(train.Data, attack.Trigger, attack.TargetLabel, attack.PoisonRatio, attack.CleanLabel, seed);
        TorchSharp.torch.random.manual_seed(seed);
        using var model = ModelZoo.CreateClassifier(Architecture, 10, InputSpec.Cifar10).MoveTo(ExperimentDevice.Current);
        File.Delete(log);
        new TrainingLoop
        {
            Model = model, Data = poisoned.Data, Options = AttackLab.Recipe(epochs, InputSpec.Cifar10, lr),
            OnEpoch = e =>
            {
                var m = Evaluator.Evaluate(model, monitor, monitorBd.Data, attack.TargetLabel);
                model.Module.train();
                var row = new Cifar10Epoch(name, e.Epoch + 1, e.Loss, e.TrainAccuracy, e.LearningRate, m.Acc, m.Asr!.Value, watch.Elapsed.TotalSeconds);
                File.AppendAllText(log, JsonSerializer.Serialize(row) + "\n");
                Console.WriteLine($"  {name} epoch {row.Epoch}: loss {row.Loss:0.###} train acc {row.TrainAccuracy:P1} monitor ACC {row.MonitorAcc:P1} ASR {row.MonitorAsr:P1} ({row.Seconds:0}s)");
            },
        }.Run(new Random(seed));
        model.Module.eval();
        GcQuietRegion.Release();
        using var bd = BackdoorTestSet.Build(test.Data, attack.Trigger, attack.TargetLabel);
        var final = Evaluator.Evaluate(model, test.Data, bd.Data, attack.TargetLabel);
        var path = ModelPath(dir, name, epochs);
        model.MoveTo(TorchSharp.torch.CPU);
        ModelLoader.Save(model, ModelFileFormat.PyTorchStateDict, path);
        Console.WriteLine($"{name}: ACC {final.Acc:P2} ASR {final.Asr:P2} RA {final.Ra:P2} after {watch.Elapsed.TotalSeconds:0}s; wrote {path}");
    }
}
