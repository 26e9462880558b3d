using WebDefense.Core.Models;
using Xunit.Abstractions;
using WebDefense.Core.Models.Zoo;
using static TorchSharp.torch;

namespace WebDefense.Core.Tests.Models;

/// <summary>PyTorch-written fixtures (tools/fixtures/make_interop_fixtures.py) against the native zoo and TorchScript.</summary>
public class InteropTests(ITestOutputHelper output)
{
    private const double Tolerance = 1e-4;

    public static TheoryData<string, int, int, int> Models => new()
    {
        { "smallcnn", 1, 28, 10 },
        { "preactresnet18", 3, 32, 10 },
    };

    private static (Tensor X, Tensor Expected) InputsAndLogits(string arch, int c, int hw, int classes) =>
        (Fixtures.ReadTensor($"{arch}_input.f32", 4, c, hw, hw), Fixtures.ReadTensor($"{arch}_logits.f32", 4, classes));

    [Theory]
    [MemberData(nameof(Models))]
    public void DatWeightsInNativeZooModelReproducePyTorchLogits(string arch, int c, int hw, int classes)
    {
        using var scope = NewDisposeScope();
        using var model = ModelZoo.Create(arch, classes, c);
        model.load(Fixtures.Resolve($"{arch}.dat"));
        model.eval();
        var (x, expected) = InputsAndLogits(arch, c, hw, classes);
        using var noGrad = no_grad();
        var diff = Fixtures.MaxAbsDiff(model.call(x), expected);
        output.WriteLine($"{arch} .dat native max|Δlogit| = {diff:E2} (max|logit| {expected.abs().max().item<float>():F3})");
        Assert.True(diff <= Tolerance, $"max abs diff {diff}");
        // The loaded running statistics are the non-trivial ones, not the defaults.
        var rv = model.state_dict().First(kv => kv.Key.EndsWith("running_var", StringComparison.Ordinal)).Value;
        Assert.True((rv - 1).abs().max().item<float>() > 1e-3);
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void ScriptedFixtureReproducesPyTorchLogits(string arch, int c, int hw, int classes)
    {
        using var scope = NewDisposeScope();
        var path = Fixtures.Resolve($"{arch}.ts.pt");
        using var module = TorchScriptModel.Load(path);
        var (x, expected) = InputsAndLogits(arch, c, hw, classes);
        using var noGrad = no_grad();
        var diff = Fixtures.MaxAbsDiff(module.call(x), expected);
        output.WriteLine($"{arch} TorchScript max|Δlogit| = {diff:E2}");
        Assert.True(diff <= Tolerance, $"max abs diff {diff}");
        Assert.False(TorchScriptModel.LooksTraced(path, module));
        Assert.True(TorchScriptModel.Inspect(path).ReferencesTrainingFlag);

        // Same names as the native zoo model (TorchSharp lists a script module's parameters before its buffers).
        using var native = ModelZoo.Create(arch, classes, c);
        Assert.Equal(native.state_dict().Keys.Order(StringComparer.Ordinal), module.state_dict().Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void TracedArchiveIsDetected()
    {
        var path = Fixtures.Resolve("smallcnn_traced.ts.pt");
        using var module = TorchScriptModel.Load(path);
        Assert.True(TorchScriptModel.LooksTraced(path, module));
        Assert.False(TorchScriptModel.Inspect(path).ReferencesTrainingFlag);
    }

    [Fact]
    public void A_torchscript_classifier_clones_in_memory_with_its_current_state()
    {
        using var scope = NewDisposeScope();
        using var loaded = ModelLoader.Load(Fixtures.Resolve("preactresnet18.ts.pt"), new ModelDeclaration(null, 10, WebDefense.Core.Data.InputSpec.Create(3, 32, 32)));
        var original = loaded.Classifier;
        using (no_grad()) original.Module.parameters().First().mul_(0.5); // a state the archive does not hold
        var before = Directory.GetFiles(Path.GetTempPath(), "webdefense-clone-*").Length;
        using var copy = original.Clone();
        Assert.Equal(before, Directory.GetFiles(Path.GetTempPath(), "webdefense-clone-*").Length);
        Assert.True(copy.IsTorchScript);

        var (x, _) = InputsAndLogits("preactresnet18", 3, 32, 10);
        using var noGrad = no_grad();
        original.Module.eval();
        copy.Module.eval();
        Assert.Equal(0, Fixtures.MaxAbsDiff(copy.Forward(x), original.Forward(x)));
        // Independent: changing the copy leaves the original as it was.
        copy.Module.parameters().First().zero_();
        Assert.NotEqual(0, original.Module.parameters().First().abs().sum().item<float>());
    }

    [Fact]
    public void SaveLoadRoundTripKeepsOutputs()
    {
        using var scope = NewDisposeScope();
        var dir = Directory.CreateTempSubdirectory("webdefense-ts-");
        try
        {
            using var module = TorchScriptModel.Load(Fixtures.Resolve("smallcnn.ts.pt"));
            var (x, expected) = InputsAndLogits("smallcnn", 1, 28, 10);
            var target = Path.Combine(dir.FullName, "sub", "copy.ts.pt");
            TorchScriptModel.Save(module, target);
            TorchScriptModel.Save(module, target); // overwrite works
            Assert.Single(Directory.GetFiles(Path.GetDirectoryName(target)!));
            using var reloaded = TorchScriptModel.Load(target);
            using var noGrad = no_grad();
            Assert.True(Fixtures.MaxAbsDiff(reloaded.call(x), expected) <= Tolerance);
            Assert.Equal(0, Fixtures.MaxAbsDiff(reloaded.call(x), module.call(x)));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(0.9)]
    [InlineData(0.1)]
    public void TruncatedArchiveGivesModelFileException(double keep)
    {
        var bytes = File.ReadAllBytes(Fixtures.Resolve("smallcnn.ts.pt"));
        var path = Path.Combine(Path.GetTempPath(), $"webdefense-trunc-{Guid.NewGuid():N}.pt");
        File.WriteAllBytes(path, bytes.AsSpan(0, (int)(bytes.Length * keep)).ToArray());
        try
        {
            Assert.Throws<ModelFileException>(() => TorchScriptModel.Load(path).Dispose());
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void CorruptedPayloadGivesModelFileException()
    {
        // Intact zip directory, garbage in the middle (tensor data): libtorch alone would load it silently.
        var bytes = File.ReadAllBytes(Fixtures.Resolve("smallcnn.ts.pt"));
        for (var i = bytes.Length / 4; i < bytes.Length / 2; i++)
        {
            bytes[i] = (byte)(i * 31);
        }

        var path = Path.Combine(Path.GetTempPath(), $"webdefense-corrupt-{Guid.NewGuid():N}.pt");
        File.WriteAllBytes(path, bytes);
        try
        {
            var e = Assert.Throws<ModelFileException>(() => TorchScriptModel.Load(path).Dispose());
            Assert.Contains("checksum", e.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void StateDictArchiveAndMissingFileAreRejected()
    {
        var e = Assert.Throws<ModelFileException>(() => TorchScriptModel.Load(Fixtures.Resolve("smallcnn.pt")));
        Assert.Contains("not TorchScript", e.Message);
        Assert.Throws<ModelFileException>(() => TorchScriptModel.Load(Fixtures.Resolve("smallcnn.dat")));
        Assert.Throws<ModelFileException>(() => TorchScriptModel.Load("/nonexistent/model.pt"));
    }
}
