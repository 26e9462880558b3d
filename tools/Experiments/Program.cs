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
        var lr = args.Length > 2 ? double.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 0.05;
        using var train = FashionMnist.Train();
        using var test = FashionMnist.Test();
        foreach (var (name, attack) in new[] { ("badnets", AttackSpec.BadNets), ("blended", AttackSpec.Blended) })
        {
            var watch = Stopwatch.StartNew();
            using var model = AttackLab.Train("smallcnn", 10, InputSpec.Grey28, train, attack, AttackLab.Recipe(epochs, InputSpec.Grey28, lr), seed: 0,
                onEpoch: e => Console.WriteLine($"  {name} epoch {e.Epoch + 1}: loss {e.Loss:0.###} train acc {e.TrainAccuracy:P1} ({watch.Elapsed.TotalSeconds:0}s)"));
            using var bd = BackdoorTestSet.Build(test, attack.Trigger, attack.TargetLabel);
            var m = Evaluator.Evaluate(model.Model, test, bd.Data, attack.TargetLabel);
            Console.WriteLine($"{name}: ACC {m.Acc:P2} ASR {m.Asr:P2} RA {m.Ra:P2} in {watch.Elapsed.TotalSeconds:0}s");
        }

        break;
    }

    case "diag":
    {
        using var train = FashionMnist.Train();
        using var test = FashionMnist.Test();
        using var small = train.Subset(Enumerable.Range(0, 20000).Select(i => (long)i).ToArray());
        foreach (var (lr, aug) in new[] { (0.01, false), (0.05, false), (0.05, true) })
        {
            WebDefense.Core.Models.Zoo.ModelZoo.Create("smallcnn", 10, 1);
            TorchSharp.torch.random.manual_seed(0);
            using var model = WebDefense.Core.Models.Zoo.ModelZoo.CreateClassifier("smallcnn", 10, InputSpec.Grey28);
            var watch = Stopwatch.StartNew();
            var history = new TrainingLoop { Model = model, Data = small, Options = new SgdOptions { LearningRate = lr, Epochs = 1, Augment = aug ? Augmentation.ForInput(InputSpec.Grey28) : Augmentation.None } }.Run(new Random(0));
            Console.WriteLine($"lr {lr} aug {aug}: loss {history[0].Loss:0.###} train acc {history[0].TrainAccuracy:P1} test ACC {Evaluator.Accuracy(model, test):P1} in {watch.Elapsed.TotalSeconds:0}s");
        }

        break;
    }

    default:
        Console.WriteLine("usage: WebDefense.Experiments attack [epochs]");
        break;
}
