using WebDefense.Core.Models;
using WebDefense.Core.Models.Serialization;
using static TorchSharp.torch;

namespace WebDefense.Core.Tests.Models.Serialization;

/// <summary>
/// Every third-party checkpoint under shared/data/models (found by walking up from the test binaries). The
/// expected values were observed with PyTorch 1.13's torch.load: key count, first key and shape, and the sum of all
/// state-dict values. Legacy (non-zip) files are rejected by design, with a message saying how to re-save them.
/// </summary>
public sealed class ThirdPartyCheckpointTests
{
    public static TheoryData<string, int, string, long[], double> ReadableFiles => new()
    {
        { "I-BAU-smallvgg/badnets_8_02_ckpt.pth", 44, "features.0.weight", [32, 3, 3, 3], 124162.5815 },
        { "I-BAU-smallvgg/gtsrbbadnets_8_02_ckpt.pth", 44, "features.0.weight", [32, 3, 3, 3], 66387.3813 },
        { "I-BAU-smallvgg/gtsrbl0_inv_0_02_ckpt.pth", 44, "features.0.weight", [32, 3, 3, 3], 71640.5698 },
        { "I-BAU-smallvgg/gtsrbl2_inv_0_02_ckpt.pth", 44, "features.0.weight", [32, 3, 3, 3], 87364.0372 },
        { "I-BAU-smallvgg/gtsrbtrojan_sq_2_02_ckpt.pth", 44, "features.0.weight", [32, 3, 3, 3], 86870.0315 },
        { "I-BAU-smallvgg/gtsrbtrojan_wm_2_02_ckpt.pth", 44, "features.0.weight", [32, 3, 3, 3], 91352.2124 },
        { "I-BAU-smallvgg/l0_inv_0_02_ckpt.pth", 44, "features.0.weight", [32, 3, 3, 3], 121877.4929 },
        { "I-BAU-smallvgg/l2_inv_0_02_ckpt.pth", 44, "features.0.weight", [32, 3, 3, 3], 126250.313 },
        { "I-BAU-smallvgg/trojan_sq_2_02_ckpt.pth", 44, "features.0.weight", [32, 3, 3, 3], 129978.7884 },
        { "I-BAU-smallvgg/trojan_wm_2_02_ckpt.pth", 44, "features.0.weight", [32, 3, 3, 3], 129799.9433 },
        { "badnet-cifar10-sashankneupane/badnet_clean.pth", 10, "features.0.weight", [16, 3, 5, 5], -12231.466 },
        { "badnet-cifar10-sashankneupane/badnet_poisoned.pth", 10, "features.0.weight", [16, 3, 5, 5], -11614.5937 },
        { "badnets-pytorch-verazuo/badnet-CIFAR10.pth", 8, "conv1.0.weight", [16, 3, 5, 5], 86.9938 },
        { "badnets-pytorch-verazuo/badnet-MNIST.pth", 8, "conv1.0.weight", [16, 1, 5, 5], -7.2293 },
    };

    public static TheoryData<string> LegacyFiles => new()
    {
        "ABL-wrn16-1-cifar10/WRN-16-1-gridTrigger-targetLB0.tar",
        "NAD-wrn16-1-cifar10/WRN-16-1-S-model_best.pth.tar",
        "NAD-wrn16-1-cifar10/WRN-16-1-T-model_best.pth.tar",
        "NAD-wrn16-1-cifar10/WRN-16-1.tar",
        "clean-resnet-cifar10-akamaster/resnet20-12fca82f.th",
        "clean-resnet-cifar10-akamaster/resnet32-d509ac18.th",
        "clean-resnet-cifar10-akamaster/resnet44-014dd654.th",
        "clean-resnet-cifar10-akamaster/resnet56-4bfd9763.th",
    };

    private static string ModelsDir()
    {
        for (var dir = AppContext.BaseDirectory; dir is not null; dir = Path.GetDirectoryName(dir))
        {
            var candidate = Path.Combine(dir, "shared", "data", "models");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException($"no shared/data/models above {AppContext.BaseDirectory}");
    }

    [Fact]
    public void Every_checkpoint_file_is_covered_by_a_test_case()
    {
        var dir = ModelsDir();
        var files = Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories)
            .Where(f => f.EndsWith(".pth", StringComparison.Ordinal) || f.EndsWith(".tar", StringComparison.Ordinal) || f.EndsWith(".th", StringComparison.Ordinal))
            .Select(f => Path.GetRelativePath(dir, f).Replace('\\', '/')).Order(StringComparer.Ordinal);
        var covered = ((IEnumerable<object[]>)ReadableFiles).Select(r => (string)r[0])
            .Concat(((IEnumerable<object[]>)LegacyFiles).Select(r => (string)r[0])).Order(StringComparer.Ordinal);
        Assert.Equal(covered, files);
    }

    [Theory]
    [MemberData(nameof(ReadableFiles))]
    public void Zip_checkpoints_are_read(string file, int count, string firstKey, long[] firstShape, double sum)
    {
        using var f = File.OpenRead(Path.Combine(ModelsDir(), file));
        Assert.Equal(ModelFileFormat.PyTorchStateDict, ModelFormatDetector.Detect(f));
        using var sd = PyTorchCheckpoint.Read(f);
        Assert.Equal(count, sd.Count);
        Assert.Equal(firstKey, sd.Keys.First());
        Assert.Equal(firstShape, sd[firstKey].shape);
        var total = sd.Entries.Sum(kv =>
        {
            using var d = kv.Value.to_type(ScalarType.Float64);
            using var s = d.sum();
            return s.item<double>();
        });
        Assert.True(Math.Abs(total - sum) < 1e-3, $"sum {total} != {sum}");
    }

    [Theory]
    [MemberData(nameof(LegacyFiles))]
    public void Legacy_checkpoints_are_rejected_with_how_to_resave(string file)
    {
        using var f = File.OpenRead(Path.Combine(ModelsDir(), file));
        var e = Assert.Throws<ModelFileException>(() => PyTorchCheckpoint.Read(f).Dispose());
        Assert.Contains("legacy (non-zip)", e.Message);
    }
}
