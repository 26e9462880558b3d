using WebDefense.Core.Data;
using WebDefense.Core.Models;
using WebDefense.Core.Training;

namespace WebDefense.Experiments;

/// <summary>The attacks of the experiments and how their SmallCnn models are trained (and cached on disk).</summary>
internal static class BackdooredModels
{
    public static readonly (string Name, AttackSpec Attack)[] Attacks = [("badnets", AttackSpec.BadNets), ("blended", AttackSpec.Blended)];

    public static BackdooredModel Train(string name, AttackSpec attack, ImageDataset train, int epochs, double lr, int seed, Action<EpochReport>? onEpoch = null) =>
        AttackLab.Train("smallcnn", 10, InputSpec.Grey28, train, attack, AttackLab.Recipe(epochs, InputSpec.Grey28, lr), seed, onEpoch);

    /// <summary>Loads <c>{cache}/{name}-e{epochs}-s{seed}.pt</c> or trains and writes it.</summary>
    public static Classifier Cached(string cache, string name, AttackSpec attack, ImageDataset train, int epochs, double lr, int seed)
    {
        Directory.CreateDirectory(cache);
        var path = Path.Combine(cache, $"{name}-e{epochs}-s{seed}.pt");
        var declaration = new ModelDeclaration("smallcnn", 10, InputSpec.Grey28);
        if (File.Exists(path))
        {
            var loaded = ModelLoader.Load(path, declaration);
            return loaded.Classifier;
        }

        Console.WriteLine($"training the {name} model ({epochs} epochs, seed {seed})…");
        var model = Train(name, attack, train, epochs, lr, seed, e => Console.WriteLine($"  epoch {e.Epoch + 1}: train acc {e.TrainAccuracy:P1}"));
        ModelLoader.Save(model.Model, ModelFileFormat.PyTorchStateDict, path);
        return model.Model;
    }
}
