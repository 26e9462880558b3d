using System.Buffers.Binary;
using System.IO.Compression;
using System.Text.Json;
using WebDefense.Core.Data;
using WebDefense.Core.Data.Triggers;
using WebDefense.Core.Evaluation;
using WebDefense.Core.Models;
using WebDefense.Core.Runs;
using WebDefense.Core.Training;

namespace WebDefense.Worker.Tests;

/// <summary>
/// A real backdoored SmallCnn (BadNets 3×3 white patch bottom-right, target 0) trained once per test run on 6,000
/// Fashion-MNIST training images, plus the defender's data written as zips of two IDX files: 30 clean images per
/// class from the first half of the Fashion-MNIST test set and 1,000 test images from its second half.
/// </summary>
public sealed class WorkerFixture : IDisposable
{
    public const string FashionMnistDir = "/usr/share/datasets/fashion-mnist";
    public static ModelDeclaration Declaration { get; } = new("smallcnn", 10, InputSpec.Grey28);

    public WorkerFixture()
    {
        Root = Directory.CreateTempSubdirectory("webdefense-worker-tests-").FullName;
        ModelPath = Path.Combine(Root, "suspect.pt");
        using (var train = IdxReader.Read(Path.Combine(FashionMnistDir, "train-images-idx3-ubyte.gz"), Path.Combine(FashionMnistDir, "train-labels-idx1-ubyte.gz")))
        using (var subset = train.Subset(Enumerable.Range(0, 6000).Select(i => (long)i).ToArray()))
        using (var attacked = AttackLab.Train("smallcnn", 10, InputSpec.Grey28, subset, AttackSpec.BadNets, AttackLab.Recipe(3, InputSpec.Grey28), seed: 0))
        {
            ModelLoader.Save(attacked.Model, ModelFileFormat.PyTorchStateDict, ModelPath);
        }

        using var all = IdxReader.Read(Path.Combine(FashionMnistDir, "t10k-images-idx3-ubyte.gz"), Path.Combine(FashionMnistDir, "t10k-labels-idx1-ubyte.gz"));
        var labels = all.Labels.data<long>().ToArray();
        var cleanRows = Enumerable.Range(0, 10).SelectMany(c => Enumerable.Range(0, 5000).Where(i => labels[i] == c).Take(30)).Select(i => (long)i).ToArray();
        using (var clean = all.Subset(cleanRows)) WriteIdxZip(clean, CleanPath);
        Test = all.Subset(Enumerable.Range(5000, 1000).Select(i => (long)i).ToArray());
        WriteIdxZip(Test, TestPath);
        BackdoorTest = BackdoorTestSet.Build(Test, PatchTrigger.BadNets, 0).Data;

        using var loaded = ModelLoader.Load(ModelPath, Declaration);
        Original = Evaluator.Evaluate(loaded.Classifier, Test, BackdoorTest, 0);
    }

    public string Root { get; }
    public string ModelPath { get; }
    public string CleanPath => Path.Combine(Root, "clean.zip");
    public string TestPath => Path.Combine(Root, "test.zip");
    public ImageDataset Test { get; }
    public ImageDataset BackdoorTest { get; }

    /// <summary>The suspect model's metrics on the test data (the attack must have worked for the tests to mean anything).</summary>
    public BackdoorMetrics Original { get; }

    public static string TriggerJson => """{"type":"patch"}""";

    public RunSpec Spec(string defense, Dictionary<string, object>? parameters = null, bool withTrigger = true, string? modelPath = null) => new()
    {
        RunId = Guid.NewGuid(),
        Defense = defense,
        Parameters = (parameters ?? []).ToDictionary(kv => kv.Key, kv => JsonSerializer.SerializeToElement(kv.Value)),
        Seed = 1,
        Model = new RunModelInput { Path = modelPath ?? ModelPath, Architecture = "smallcnn", NumClasses = 10, InputShape = [1, 28, 28], Mean = [0f], Std = [1f] },
        CleanData = new RunDatasetInput { Path = CleanPath, FileName = "clean.zip" },
        TestSet = new RunDatasetInput { Path = TestPath, FileName = "test.zip" },
        TriggerJson = withTrigger ? TriggerJson : null,
        TargetLabel = 0,
        OutputDirectory = Path.Combine(Root, "run-" + Guid.NewGuid().ToString("N")),
        Threads = 1,
    };

    /// <summary>A zip of an IDX images file (0x00000803) and an IDX labels file (0x00000801), as DatasetReader accepts.</summary>
    public static void WriteIdxZip(ImageDataset data, string path)
    {
        if (data.Channels != 1) throw new ArgumentException("IDX holds grey images");
        int n = data.Count, h = data.Height, w = data.Width;
        var images = new byte[16 + n * h * w];
        BinaryPrimitives.WriteInt32BigEndian(images, IdxReader.ImagesMagic);
        BinaryPrimitives.WriteInt32BigEndian(images.AsSpan(4), n);
        BinaryPrimitives.WriteInt32BigEndian(images.AsSpan(8), h);
        BinaryPrimitives.WriteInt32BigEndian(images.AsSpan(12), w);
        data.Images.contiguous().data<byte>().ToArray().CopyTo(images, 16);
        var labels = new byte[8 + n];
        BinaryPrimitives.WriteInt32BigEndian(labels, IdxReader.LabelsMagic);
        BinaryPrimitives.WriteInt32BigEndian(labels.AsSpan(4), n);
        var l = data.Labels.data<long>().ToArray();
        for (var i = 0; i < n; i++) labels[8 + i] = checked((byte)l[i]);

        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
        foreach (var (name, bytes) in new[] { ("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels) })
        {
            using var s = zip.CreateEntry(name).Open();
            s.Write(bytes);
        }
    }

    public void Dispose()
    {
        Test.Dispose();
        BackdoorTest.Dispose();
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

[CollectionDefinition(Name)]
public sealed class WorkerCollection : ICollectionFixture<WorkerFixture>
{
    public const string Name = "worker";
}
