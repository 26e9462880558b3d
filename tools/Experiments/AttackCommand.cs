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
}
