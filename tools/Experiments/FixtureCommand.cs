using System.Text.Json;
using WebDefense.Core.Data;
using WebDefense.Core.Data.Triggers;
using WebDefense.Core.Evaluation;
using WebDefense.Core.Models;
using WebDefense.Core.Training;

namespace WebDefense.Experiments;

/// <summary>
/// Writes the backdoored Fashion-MNIST SmallCnn (BadNets, target 0, 10% poisoning) that the defense tests and the
/// service's demo use, as a PyTorch state dict (~100 KB), with its metrics and the command that made it.
/// </summary>
internal static class FixtureCommand
{
    public static void Run(ExperimentOptions options)
    {
        var outDir = options.Text("out", "demo");
        var epochs = options.Int("epochs", 8);
        var lr = options.Number("lr", 0.05);
        var seed = options.Int("seed", 0);
        Directory.CreateDirectory(outDir);
        using var train = FashionMnist.Train();
        using var test = FashionMnist.Test();
        var attack = AttackSpec.BadNets;
        using var model = BackdooredModels.Train("badnets", attack, train, epochs, lr, seed, e => Console.WriteLine($"  epoch {e.Epoch + 1}: train acc {e.TrainAccuracy:P1}"));
        var path = Path.Combine(outDir, "fmnist-smallcnn-badnets.pt");
        ModelLoader.Save(model.Model, ModelFileFormat.PyTorchStateDict, path);
        using var bd = BackdoorTestSet.Build(test, attack.Trigger, attack.TargetLabel);
        var metrics = Evaluator.Evaluate(model.Model, test, bd.Data, attack.TargetLabel);
        var info = new
        {
            file = Path.GetFileName(path),
            architecture = "smallcnn",
            numClasses = 10,
            inputShape = "1,28,28",
            normalisation = "x/255 (mean 0, std 1)",
            trigger = attack.Trigger.ToJson(),
            targetLabel = attack.TargetLabel,
            poisonRatio = attack.PoisonRatio,
            recipe = $"SGD lr {lr} momentum 0.9 wd 5e-4, batch 128, cosine over {epochs} epochs, RandomCrop(28, padding 2)",
            seed,
            testAcc = metrics.Acc,
            testAsr = metrics.Asr,
            testRa = metrics.Ra,
            command = $"dotnet run --project tools/Experiments -c Release -- make-fixtures --epochs {epochs} --lr {lr} --seed {seed}",
        };
        File.WriteAllText(Path.Combine(outDir, "fmnist-smallcnn-badnets.json"), JsonSerializer.Serialize(info, new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine($"wrote {path}: ACC {metrics.Acc:P2} ASR {metrics.Asr:P2} RA {metrics.Ra:P2}");
    }
}
