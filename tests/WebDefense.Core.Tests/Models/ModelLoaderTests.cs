using TorchSharp;
using WebDefense.Core.Data;
using WebDefense.Core.Models;
using static TorchSharp.torch;

namespace WebDefense.Core.Tests.Models;

/// <summary>
/// The engine's "done when": a PreActResNet-18 written by PyTorch (state dict, safetensors, TorchScript) loads
/// through the one entry point and gives PyTorch's logits; mismatches are one clear message; a defended model
/// goes back out in the format it came in.
/// </summary>
public class ModelLoaderTests
{
    private static readonly ModelDeclaration PreAct = new("preactresnet18", 10, InputSpec.Create(3, 32, 32));
    private static readonly ModelDeclaration Small = new("smallcnn", 10, InputSpec.Grey28);

    [Theory]
    [InlineData("preactresnet18.pt", ModelFileFormat.PyTorchStateDict)]
    [InlineData("preactresnet18.safetensors", ModelFileFormat.Safetensors)]
    [InlineData("preactresnet18.dat", ModelFileFormat.TorchSharp)]
    [InlineData("preactresnet18.ts.pt", ModelFileFormat.TorchScript)]
    public void Preactresnet18_written_by_pytorch_gives_pytorchs_logits(string file, ModelFileFormat format)
    {
        var declaration = format == ModelFileFormat.TorchScript ? PreAct with { Architecture = null } : PreAct;
        using var loaded = ModelLoader.Load(Fixtures.Resolve(file), declaration);
        Assert.Equal(format, loaded.Format);
        Assert.Equal(11_171_146, loaded.ParameterCount);
        AssertLogits(loaded.Classifier, "preactresnet18", 3, 32);
    }

    [Theory]
    [InlineData("smallcnn.pt")]
    [InlineData("smallcnn.safetensors")]
    [InlineData("smallcnn.ts.pt")]
    public void Smallcnn_round_trips_in_the_format_it_came_in(string file)
    {
        var isScript = file.EndsWith(".ts.pt", StringComparison.Ordinal);
        using var loaded = ModelLoader.Load(Fixtures.Resolve(file), isScript ? Small with { Architecture = null } : Small);
        // "Defend" it: zero one conv filter, then write it back in its own format and read it again.
        using (no_grad())
        {
            loaded.Classifier.Module.named_parameters().First(p => p.name == "conv2.weight").parameter[3].zero_();
        }

        var path = Path.Combine(Path.GetTempPath(), $"roundtrip-{Guid.NewGuid():N}{ModelLoader.Extension(loaded.Format)}");
        try
        {
            ModelLoader.Save(loaded.Classifier, loaded.Format, path);
            using var again = ModelLoader.Load(path, isScript ? Small with { Architecture = null } : Small);
            Assert.Equal(loaded.Format, again.Format);
            using var scope = NewDisposeScope();
            var w = again.Classifier.Module.named_parameters().First(p => p.name == "conv2.weight").parameter;
            Assert.Equal(0f, w[3].abs().sum().item<float>());
            var x = Fixtures.ReadTensor("smallcnn_input.f32", 4, 1, 28, 28);
            using var noGrad = no_grad();
            Assert.True(loaded.Classifier.Forward(x).allclose(again.Classifier.Forward(x), rtol: 0, atol: 1e-6));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_200_way_head_when_10_classes_were_declared_is_one_clear_message()
    {
        var ex = Assert.Throws<ModelFileException>(() => ModelLoader.Load(Fixtures.Resolve("smallcnn.pt"), Small with { NumClasses = 200 }));
        Assert.Contains("fc.weight: file [10,64], model [200,64]", ex.Message);
        Assert.Contains("fc.bias", ex.Message);
        Assert.Contains("classifier head has 10 outputs but 200 classes were declared", ex.Message);
    }

    [Fact]
    public void Wrong_architecture_lists_missing_and_unexpected_keys()
    {
        var ex = Assert.Throws<ModelFileException>(() => ModelLoader.Load(Fixtures.Resolve("smallcnn.pt"), PreAct));
        Assert.Matches(@"\d+ missing key\(s\): conv1\.weight|\d+ missing key\(s\): layer1", ex.Message);
        Assert.Contains("unexpected key(s)", ex.Message);
    }

    [Fact]
    public void State_dict_without_architecture_is_matched_against_the_zoo_and_torchscript_needs_none()
    {
        using (var matched = ModelLoader.Load(Fixtures.Resolve("smallcnn.pt"), Small with { Architecture = null }))
        {
            Assert.Equal("smallcnn", matched.Classifier.Architecture);
            Assert.Equal(["architecture smallcnn: the file's keys and shapes fit it and no other zoo entry"], matched.Inferred);
        }

        var unknown = Assert.Throws<ModelFileException>(() => ModelLoader.Load(Fixtures.Resolve("smallcnn.pt"), Small with { Architecture = "lenet" }));
        Assert.Contains("unknown architecture 'lenet'", unknown.Message);
        Assert.Contains("the file fits 'smallcnn'", unknown.Message);
        Assert.Contains("torch.jit.script(model)", unknown.Message);
        var scriptWithArch = Assert.Throws<ModelFileException>(() => ModelLoader.Load(Fixtures.Resolve("smallcnn.ts.pt"), Small));
        Assert.Contains("carries its own architecture", scriptWithArch.Message);
    }

    [Fact]
    public void Input_shape_and_class_count_are_checked_by_a_dry_run()
    {
        var script = Small with { Architecture = null };
        var channels = Assert.Throws<ModelFileException>(() => ModelLoader.Load(Fixtures.Resolve("smallcnn.ts.pt"), script with { Input = InputSpec.Create(3, 28, 28) }));
        Assert.Contains("does not accept 3×28×28", channels.Message);
        // The interpreter's cause, not only its "operation failed" headline.
        Assert.Contains("expected input[2, 3, 28, 28] to have 1 channels, but got 3 channels instead", channels.Message);
        var size = Assert.Throws<ModelFileException>(() => ModelLoader.Load(Fixtures.Resolve("smallcnn.ts.pt"), script with { Input = InputSpec.Create(1, 2, 2) }));
        Assert.Contains("does not accept 1×2×2", size.Message);
        Assert.EndsWith("inputs: Given input size: (32x1x1). Calculated output size: (32x0x0). Output size is too small", size.Message);
        Assert.DoesNotContain("Traceback", size.Message);
        var classes = Assert.Throws<ModelFileException>(() => ModelLoader.Load(Fixtures.Resolve("smallcnn.ts.pt"), script with { NumClasses = 43 }));
        Assert.Contains("43 classes were declared", classes.Message);
    }

    [Fact]
    public void Traced_torchscript_loads_with_a_warning()
    {
        using var loaded = ModelLoader.Load(Fixtures.Resolve("smallcnn_traced.ts.pt"), Small with { Architecture = null });
        Assert.Contains(loaded.Warnings, w => w.Contains("traced", StringComparison.Ordinal));
    }

    [Fact]
    public void A_malicious_pickle_is_refused_through_the_loader_without_side_effects()
    {
        var marker = Path.Combine(Path.GetTempPath(), $"pwned-{Guid.NewGuid():N}");
        var path = Path.Combine(Path.GetTempPath(), $"evil-{Guid.NewGuid():N}.pt");
        File.WriteAllBytes(path, Serialization.SerializationTestHelpers.MaliciousCheckpoint(marker));
        try
        {
            var ex = Assert.Throws<ModelFileException>(() => ModelLoader.Load(path, Small));
            Assert.Contains("system", ex.Message);
            Assert.False(File.Exists(marker));
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static void AssertLogits(Classifier model, string name, int channels, int size)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = Fixtures.ReadTensor(name + "_input.f32", 4, channels, size, size);
        var expected = Fixtures.ReadTensor(name + "_logits.f32", 4, 10);
        var diff = model.Forward(x).sub(expected).abs().max().item<float>();
        Assert.True(diff < 1e-4, $"max |logit diff| {diff}");
    }
}
