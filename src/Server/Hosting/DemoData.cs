using System.IO.Compression;
using WebDefense.Core.Data;
using WebDefense.Core.Data.Triggers;

namespace WebDefense.Server.Hosting;

/// <summary>
/// The demo: the attack lab's BadNets Fashion-MNIST model (demo/) and data sets cut from Debian's
/// dataset-fashion-mnist package, written as .npz files.
/// </summary>
public static class DemoData
{
    public const string FashionMnistDirectory = "/usr/share/datasets/fashion-mnist";
    public const string TriggerJson = "{\"type\":\"patch\"}";
    public const int TargetLabel = 0;
    public static string ModelPath => Path.Combine(AppContext.BaseDirectory, "demo", "fmnist-smallcnn-badnets.pt");

    public static bool FashionMnistAvailable => File.Exists(Path.Combine(FashionMnistDirectory, "t10k-images-idx3-ubyte.gz"));

    /// <summary>The demo's poisoning of its untrusted training set (for the training-time defense): BadNets, 10%, target 0.</summary>
    public const double PoisonRatio = 0.1;

    /// <summary>
    /// Writes clean.npz (perClass images of each class from train), test.npz (the first testCount test images),
    /// backdoor-test.npz (their triggered non-target images, TRUE labels) and poisoned-train.npz: poisonedPerClass further
    /// training images of each class (none of the clean ones), <see cref="PoisonRatio"/> of them BadNets-poisoned towards
    /// <see cref="TargetLabel"/> by the attack lab, with the truth as the array "poisoned" (reporting only).
    /// </summary>
    public static IReadOnlyList<(string Kind, string Name, string Path)> Write(string directory, int perClass = 50, int testCount = 10_000, int poisonedPerClass = 500)
    {
        Directory.CreateDirectory(directory);
        var written = new List<(string, string, string)>();
        using (var train = Read("train"))
        {
            var labels = train.Labels.data<long>().ToArray();
            var picked = labels.Select((label, i) => (label, i: (long)i)).GroupBy(p => p.label).OrderBy(g => g.Key).SelectMany(g => g.Take(perClass).Select(p => p.i)).ToArray();
            using var clean = train.Subset(picked);
            var path = Path.Combine(directory, "fmnist-clean.npz");
            NpzWriter.Write(clean, path);
            written.Add(("clean", $"Fashion-MNIST clean ({perClass}/class)", path));
            if (poisonedPerClass > 0)
            {
                var rest = labels.Select((label, i) => (label, i: (long)i)).GroupBy(p => p.label).OrderBy(g => g.Key)
                    .SelectMany(g => g.Skip(perClass).Take(poisonedPerClass).Select(p => p.i)).ToArray();
                using var untrusted = train.Subset(rest);
                using var poisoned = Poisoning.Poison(untrusted, TriggerSpec.FromJson(TriggerJson), TargetLabel, PoisonRatio, cleanLabel: false, seed: 0);
                var poisonedPath = Path.Combine(directory, "fmnist-poisoned-train.npz");
                NpzWriter.Write(poisoned.Data, poisonedPath, poisoned.PoisonFlags());
                written.Add(("poisoned-train", $"Fashion-MNIST training set, BadNets {PoisonRatio * 100:0}% poisoned ({untrusted.Count}, with truth)", poisonedPath));
            }
        }

        using var all = Read("t10k");
        using var test = all.Subset(Enumerable.Range(0, Math.Min(testCount, all.Count)).Select(i => (long)i).ToArray());
        var testPath = Path.Combine(directory, "fmnist-test.npz");
        NpzWriter.Write(test, testPath);
        written.Add(("test", $"Fashion-MNIST test ({test.Count})", testPath));
        using var backdoor = BackdoorTestSet.Build(test, TriggerSpec.FromJson(TriggerJson), TargetLabel);
        var backdoorPath = Path.Combine(directory, "fmnist-backdoor-test.npz");
        NpzWriter.Write(backdoor.Data, backdoorPath);
        written.Add(("backdoor-test", $"Fashion-MNIST BadNets test ({backdoor.Data.Count}, true labels)", backdoorPath));
        return written;
    }

    private static ImageDataset Read(string split)
    {
        var images = Gunzip(Path.Combine(FashionMnistDirectory, $"{split}-images-idx3-ubyte.gz"));
        var labels = Gunzip(Path.Combine(FashionMnistDirectory, $"{split}-labels-idx1-ubyte.gz"));
        return IdxReader.Read(images, labels, new DatasetReadOptions { NumClasses = 10 });
    }

    private static byte[] Gunzip(string path)
    {
        using var gz = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
        using var memory = new MemoryStream();
        gz.CopyTo(memory);
        return memory.ToArray();
    }

}
