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

    /// <summary>Legacy (non-zip) files, all wrapped in a dict with 'state_dict' (akamaster's with DataParallel's 'module.').</summary>
    public static TheoryData<string, int, string, long[], double> LegacyFiles => new()
    {
        { "ABL-wrn16-1-cifar10/WRN-16-1-gridTrigger-targetLB0.tar", 82, "conv1.weight", [16, 3, 3, 3], 429275.3759 },
        { "NAD-wrn16-1-cifar10/WRN-16-1-S-model_best.pth.tar", 82, "conv1.weight", [16, 3, 3, 3], 245806.5289 },
        { "NAD-wrn16-1-cifar10/WRN-16-1-T-model_best.pth.tar", 82, "conv1.weight", [16, 3, 3, 3], 129717.4381 },
        { "NAD-wrn16-1-cifar10/WRN-16-1.tar", 82, "conv1.weight", [16, 3, 3, 3], 252558.3065 },
        { "clean-resnet-cifar10-akamaster/resnet20-12fca82f.th", 97, "conv1.weight", [16, 3, 3, 3], 139.7826 },
        { "clean-resnet-cifar10-akamaster/resnet32-d509ac18.th", 157, "conv1.weight", [16, 3, 3, 3], 721.5179 },
        { "clean-resnet-cifar10-akamaster/resnet44-014dd654.th", 217, "conv1.weight", [16, 3, 3, 3], 1107.7915 },
        { "clean-resnet-cifar10-akamaster/resnet56-4bfd9763.th", 277, "conv1.weight", [16, 3, 3, 3], 1427.8790 },
    };

    /// <summary>MEDIC's zip files: plain Python floats (BINFLOAT) next to the state dict, one under 'net_state_dict'.</summary>
    public static TheoryData<string, int, string, long[], double> MedicFiles => new()
    {
        { "MEDIC-wrn16-1-cifar10/SIG/WRN-16-1-S-model_best.pth.tar", 82, "conv1.weight", [16, 3, 3, 3], 297138.8862 },
        { "MEDIC-wrn16-1-cifar10/cleanlabel/WRN-16-1-S-model_best.pth.tar", 82, "conv1.weight", [16, 3, 3, 3], 1007806.2810 },
        { "MEDIC-wrn16-1-cifar10/adaptive_attack_2/WRN-16-1-S-model_best.pth.tar", 82, "conv1.weight", [16, 3, 3, 3], 902074.2911 },
        { "MEDIC-wrn16-1-cifar10/adaptive_attack_1/composite_cifar_resnet.pth", 82, "conv1.weight", [16, 3, 3, 3], 134970.4175 },
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
        var covered = ((IEnumerable<object[]>)ReadableFiles).Concat(LegacyFiles).Concat(MedicFiles)
            .Select(r => (string)r[0]).Order(StringComparer.Ordinal);
        Assert.Equal(covered, files);
    }

    [Theory]
    [MemberData(nameof(ReadableFiles))]
    [MemberData(nameof(LegacyFiles))]
    [MemberData(nameof(MedicFiles))]
    public void Checkpoints_are_read_as_PyTorch_reads_them(string file, int count, string firstKey, long[] firstShape, double sum)
    {
        using var f = File.OpenRead(Path.Combine(ModelsDir(), file));
        var legacy = ((IEnumerable<object[]>)LegacyFiles).Any(r => (string)r[0] == file);
        Assert.Equal(legacy ? ModelFileFormat.PyTorchLegacy : ModelFileFormat.PyTorchStateDict, ModelFormatDetector.Detect(f));
        using var sd = PyTorchCheckpoint.Read(f, out var contents);
        Assert.Equal(count, sd.Count);
        Assert.Equal(firstKey, sd.Keys.First());
        Assert.Equal(firstShape, sd[firstKey].shape);
        var total = sd.Entries.Sum(kv =>
        {
            using var d = kv.Value.to_type(ScalarType.Float64);
            using var s = d.sum();
            return s.item<double>();
        });
        Assert.True(Math.Abs(total - sum) < 1e-3 * Math.Max(1, Math.Abs(sum) / 1e4), $"sum {total} != {sum}");
        if (legacy || file.StartsWith("MEDIC", StringComparison.Ordinal))
        {
            Assert.NotNull(contents.Container);
            Assert.Contains(contents.Ignored, i => i.StartsWith("epoch (int", StringComparison.Ordinal) || i.StartsWith("best_prec1 (float", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void Medic_composite_checkpoint_unwraps_net_state_dict_and_ignores_the_rest()
    {
        using var f = File.OpenRead(Path.Combine(ModelsDir(), "MEDIC-wrn16-1-cifar10/adaptive_attack_1/composite_cifar_resnet.pth"));
        using var sd = PyTorchCheckpoint.Read(f, out var contents);
        Assert.Equal("net_state_dict", contents.Container);
        Assert.Empty(contents.StrippedPrefixes);
        Assert.Contains("epoch (int 23)", contents.Ignored);
        Assert.Contains("best_acc (float 0.798)", contents.Ignored);
        Assert.Contains(contents.Ignored, i => i.StartsWith("optimizer_state_dict (dict", StringComparison.Ordinal));
        Assert.Contains(contents.Ignored, i => i.StartsWith("scheduler_state_dict (dict", StringComparison.Ordinal));
    }

    [Fact]
    public void Akamaster_checkpoint_strips_dataparallel_prefix()
    {
        using var f = File.OpenRead(Path.Combine(ModelsDir(), "clean-resnet-cifar10-akamaster/resnet20-12fca82f.th"));
        using var sd = PyTorchCheckpoint.Read(f, out var contents);
        Assert.Equal("state_dict", contents.Container);
        Assert.Equal(["module."], contents.StrippedPrefixes);
        Assert.Equal(["best_prec1 (float 91.78)"], contents.Ignored);
    }
}
