using System.Diagnostics;
using WebDefense.Core.Data;
using WebDefense.Core.Data.Triggers;
using WebDefense.Core.Evaluation;
using WebDefense.Core.Training;

namespace WebDefense.Experiments;

/// <summary>Trains the experiment's backdoored models and prints their metrics (a quick look at the attack lab).</summary>
internal static class AttackCommand
{
    public static void Run(ExperimentOptions options)
    {
        if (options.Text("out", "") is { Length: > 0 } output)
        {
            TrainOne(options, output);
            return;
        }

        using var train = FashionMnist.Train();
        using var test = FashionMnist.Test();
        foreach (var (name, attack) in BackdooredModels.Attacks)
        {
            var watch = Stopwatch.StartNew();
            var allocated = GC.GetTotalAllocatedBytes();
            var gcs = GC.CollectionCount(0);
            using var model = BackdooredModels.Train(name, attack, train, options.Int("epochs", 8), options.Number("lr", 0.05), options.Int("seed", 0),
                e => Console.WriteLine($"  {name} epoch {e.Epoch + 1}: loss {e.Loss:0.###} train acc {e.TrainAccuracy:P1} ({watch.Elapsed.TotalSeconds:0}s)"));
            using var bd = BackdoorTestSet.Build(test, attack.Trigger, attack.TargetLabel);
            var m = Evaluator.Evaluate(model.Model, test, bd.Data, attack.TargetLabel);
            Console.WriteLine($"{name}: ACC {m.Acc:P2} ASR {m.Asr:P2} RA {m.Ra:P2} in {watch.Elapsed.TotalSeconds:0}s; " +
                              $"{(GC.GetTotalAllocatedBytes() - allocated) >> 20} MB allocated, {GC.CollectionCount(0) - gcs} GCs");
        }
    }

    /// <summary>
    /// One BadNets model of any zoo architecture on a balanced Fashion-MNIST sample (--arch, --per-class, --epochs,
    /// --lr, --seed), saved as a PyTorch state dict with the data a defense run needs: the defender's clean set
    /// (--clean-per-class drawn with another seed), the test set and the triggered non-target test set (TRUE labels).
    /// </summary>
    private static void TrainOne(ExperimentOptions options, string output)
    {
        var architecture = options.Text("arch", "smallcnn");
        var seed = options.Int("seed", 0);
        Directory.CreateDirectory(output);
        using var full = FashionMnist.Train();
        using var train = DefenseStudy.BalancedSample(full, options.Int("per-class", 500), seed);
        using var test = FashionMnist.Test();
        var attack = AttackSpec.BadNets;
        var watch = Stopwatch.StartNew();
        using var model = AttackLab.Train(architecture, 10, InputSpec.Grey28, train, attack,
            AttackLab.Recipe(options.Int("epochs", 5), InputSpec.Grey28, options.Number("lr", 0.05)), seed,
            e => Console.WriteLine($"  epoch {e.Epoch + 1}: loss {e.Loss:0.###} train acc {e.TrainAccuracy:P1} ({watch.Elapsed.TotalSeconds:0}s)"));
        using var bd = BackdoorTestSet.Build(test, attack.Trigger, attack.TargetLabel);
        var m = Evaluator.Evaluate(model.Model, test, bd.Data, attack.TargetLabel);
        Console.WriteLine($"{architecture} badnets: ACC {m.Acc:P2} ASR {m.Asr:P2} RA {m.Ra:P2} in {watch.Elapsed.TotalSeconds:0}s");
        WebDefense.Core.Models.ModelLoader.Save(model.Model, WebDefense.Core.Models.ModelFileFormat.PyTorchStateDict, Path.Combine(output, $"{architecture}-badnets-s{seed}.pt"));
        using var clean = DefenseStudy.BalancedSample(full, options.Int("clean-per-class", 50), 1000 + seed);
        NpzWriter.Write(clean, Path.Combine(output, "fmnist-clean.npz"));
        NpzWriter.Write(test, Path.Combine(output, "fmnist-test.npz"));
        NpzWriter.Write(bd.Data, Path.Combine(output, "fmnist-backdoor-test.npz"));
        Console.WriteLine($"wrote {output}");
    }
}
