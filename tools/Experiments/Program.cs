using System.Diagnostics;
using WebDefense.Core.Data;
using WebDefense.Core.Data.Triggers;
using WebDefense.Core.Evaluation;
using WebDefense.Core.Runtime;
using WebDefense.Core.Training;
using WebDefense.Experiments;

TorchRuntime.EnsureAvailable();
TorchRuntime.UseThreads(Environment.ProcessorCount);
var command = args.FirstOrDefault() ?? "help";
switch (command)
{
    case "attack":
    {
        var epochs = args.Length > 1 ? int.Parse(args[1]) : 3;
        using var train = FashionMnist.Train();
        using var test = FashionMnist.Test();
        foreach (var (name, attack) in new[] { ("badnets", AttackSpec.BadNets), ("blended", AttackSpec.Blended) })
        {
            var watch = Stopwatch.StartNew();
            using var model = AttackLab.Train("smallcnn", 10, InputSpec.Grey28, train, attack, AttackLab.Recipe(epochs, InputSpec.Grey28), seed: 0,
                onEpoch: e => Console.WriteLine($"  {name} epoch {e.Epoch + 1}: loss {e.Loss:0.###} train acc {e.TrainAccuracy:P1} ({watch.Elapsed.TotalSeconds:0}s)"));
            using var bd = BackdoorTestSet.Build(test, attack.Trigger, attack.TargetLabel);
            var m = Evaluator.Evaluate(model.Model, test, bd.Data, attack.TargetLabel);
            Console.WriteLine($"{name}: ACC {m.Acc:P2} ASR {m.Asr:P2} RA {m.Ra:P2} in {watch.Elapsed.TotalSeconds:0}s");
        }

        break;
    }

    default:
        Console.WriteLine("usage: WebDefense.Experiments attack [epochs]");
        break;
}
