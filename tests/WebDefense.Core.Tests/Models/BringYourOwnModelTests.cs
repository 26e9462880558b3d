using System.Text.Json;
using WebDefense.Core.Models;
using WebDefense.Core.Models.Zoo;
using static TorchSharp.torch;

namespace WebDefense.Core.Tests.Models;

/// <summary>
/// Published checkpoints loaded as they are, with nothing declared: the architecture is found by matching keys and
/// shapes against the zoo, classes and channels read from the weights, and the logits equal PyTorch's
/// (tools/fixtures/make_byom_fixtures.py wrote them from reference definitions loaded with strict=True).
/// </summary>
public sealed class BringYourOwnModelTests
{
    private static string Byom(string name) => Path.Combine(AppContext.BaseDirectory, "fixtures", "byom", name);

    private static string SharedModel(string rel) => Path.Combine(Fixtures.SharedDir() ?? throw new DirectoryNotFoundException("no shared/data above the tests"), "data", "models", rel);

    public static TheoryData<string> LogitCases()
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Byom("expected.json")));
        return new TheoryData<string>(doc.RootElement.GetProperty("logits").EnumerateObject().Select(p => p.Name));
    }

    [Theory]
    [MemberData(nameof(LogitCases))]
    public void Checkpoint_loads_without_declarations_and_reproduces_pytorch_logits(string name)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Byom("expected.json")));
        var c = doc.RootElement.GetProperty("logits").GetProperty(name);
        var file = c.GetProperty("file").GetString()!;
        var path = c.GetProperty("shared").GetBoolean() ? SharedModel(file) : Byom(file);
        var want = c.GetProperty("logits").EnumerateArray().Select(x => x.GetSingle()).ToArray();

        using var loaded = ModelLoader.Load(path, new PartialDeclaration());
        Assert.Equal(c.GetProperty("architecture").GetString(), loaded.Classifier.Architecture);
        Assert.Equal(want.Length / 4, loaded.Classifier.NumClasses);
        Assert.Equal((3, 32, 32), (loaded.Classifier.Input.Channels, loaded.Classifier.Input.Height, loaded.Classifier.Input.Width));
        Assert.Contains(loaded.Inferred, i => i.StartsWith("architecture " + loaded.Classifier.Architecture, StringComparison.Ordinal));

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var bytes = File.ReadAllBytes(Byom("input.f32"));
        var input = tensor(Enumerable.Range(0, bytes.Length / 4).Select(i => BitConverter.ToSingle(bytes, i * 4)).ToArray()).reshape(4, 3, 32, 32);
        var got = loaded.Classifier.Forward(input).reshape(-1).data<float>().ToArray();
        var scale = Math.Max(1f, want.Max(Math.Abs));
        for (var i = 0; i < want.Length; i++)
        {
            Assert.True(Math.Abs(got[i] - want[i]) <= 1e-4f * scale, $"{name} logit {i}: {got[i]} vs PyTorch {want[i]}");
        }
    }

    [Fact]
    public void Half_precision_wrn16_2_under_net_reports_what_was_unwrapped_and_converted()
    {
        using var loaded = ModelLoader.Load(Byom("wrn16_2_half.pt"), new PartialDeclaration());
        Assert.Equal("wrn16_2", loaded.Classifier.Architecture);
        Assert.Equal(5, loaded.Classifier.NumClasses);
        Assert.Equal("net", loaded.Contents.Container);
        Assert.Equal(["epoch (int 3)"], loaded.Contents.Ignored);
        Assert.Contains(loaded.Warnings, w => w.Contains("converted to float32", StringComparison.Ordinal));
        Assert.Equal(["architecture wrn16_2: the file's keys and shapes fit it and no other zoo entry", "5 classes from fc.weight",
            "3 input channel(s) from conv1.weight", "input 32×32, the size wrn16_2 is made for; give inputShape if your images differ"], loaded.Inferred);
    }

    [Theory]
    [InlineData("resnet110", 1_727_962)]
    [InlineData("resnet20", 269_722)]
    [InlineData("wrn28_10", 36_479_194)]
    [InlineData("wrn16_1", 175_066)]
    [InlineData("smallvgg", 308_394)]
    [InlineData("lenet5", 121_182)]
    public void New_zoo_entries_have_the_reference_parameter_counts(string arch, long count)
    {
        using var model = ModelZoo.Create(arch, 10, 3);
        Assert.Equal(count, ModelZoo.ParameterCount(model));
    }

    [Fact]
    public void A_layout_no_zoo_entry_has_names_the_nearest_and_shows_the_torchscript_road()
    {
        var e = Assert.Throws<ModelFileException>(() =>
            ModelLoader.Load(SharedModel("badnets-pytorch-verazuo/badnet-CIFAR10.pth"), new PartialDeclaration()));
        Assert.Contains("fit no zoo architecture", e.Message);
        Assert.Contains("The nearest is '", e.Message);
        Assert.Contains("key(s) the file lacks", e.Message);
        Assert.Contains("torch.jit.script(model).save('model.ts.pt')", e.Message);
        Assert.Contains("torch.jit.trace(model, torch.rand(1, 3, 32, 32))", e.Message);
    }

    [Fact]
    public void Declared_values_that_contradict_the_file_are_refused_with_what_fits()
    {
        var path = SharedModel("clean-resnet-cifar10-akamaster/resnet20-12fca82f.th");
        var wrongArch = Assert.Throws<ModelFileException>(() => ModelLoader.Load(path, new PartialDeclaration("resnet32")));
        Assert.Contains("missing key(s)", wrongArch.Message);
        Assert.Contains("The file fits 'resnet20'", wrongArch.Message);
        var wrongClasses = Assert.Throws<ModelFileException>(() => ModelLoader.Load(path, new PartialDeclaration(NumClasses: 43)));
        Assert.Contains("the file's classifier (linear.weight) has 10 outputs but 43 classes were declared", wrongClasses.Message);
        var wrongChannels = Assert.Throws<ModelFileException>(() => ModelLoader.Load(path, new PartialDeclaration(InputShape: [1, 32, 32])));
        Assert.Contains("takes 3 input channel(s)", wrongChannels.Message);
    }

    [Fact]
    public void Declared_shape_and_normalisation_are_kept()
    {
        var path = SharedModel("clean-resnet-cifar10-akamaster/resnet20-12fca82f.th");
        using var loaded = ModelLoader.Load(path, new PartialDeclaration("resnet20", 10, [3, 40, 40], [0.5f], [0.25f, 0.5f, 1f]));
        Assert.Equal((40, 40), (loaded.Classifier.Input.Height, loaded.Classifier.Input.Width));
        Assert.Equal([0.5f, 0.5f, 0.5f], loaded.Classifier.Input.Mean);
        Assert.Equal([0.25f, 0.5f, 1f], loaded.Classifier.Input.Std);
        Assert.Empty(loaded.Inferred);
        Assert.Equal(ModelFileFormat.PyTorchLegacy, loaded.Format);
    }

    [Fact]
    public void Any_size_architecture_without_input_shape_asks_for_it()
    {
        var e = Assert.Throws<ModelFileException>(() => ModelLoader.Load(Fixtures.Resolve("smallcnn.pt"), new PartialDeclaration()));
        Assert.Contains("'smallcnn' takes images of any size, so the input shape (C,H,W) is needed", e.Message);
        using var loaded = ModelLoader.Load(Fixtures.Resolve("smallcnn.pt"), new PartialDeclaration(InputShape: [1, 28, 28]));
        Assert.Equal("smallcnn", loaded.Classifier.Architecture);
        Assert.Equal(10, loaded.Classifier.NumClasses);
    }

    [Fact]
    public void TorchScript_without_classes_or_shape_is_probed_and_what_was_inferred_recorded()
    {
        using var loaded = ModelLoader.Load(Fixtures.Resolve("smallcnn.ts.pt"), new PartialDeclaration());
        Assert.True(loaded.Classifier.IsTorchScript);
        Assert.Equal(10, loaded.Classifier.NumClasses);
        Assert.Equal((1, 28, 28), (loaded.Classifier.Input.Channels, loaded.Classifier.Input.Height, loaded.Classifier.Input.Width));
        Assert.Contains(loaded.Inferred, i => i.StartsWith("1 input channel(s) from ", StringComparison.Ordinal));
        Assert.Contains(loaded.Inferred, i => i.StartsWith("input 1×28×28", StringComparison.Ordinal));
        Assert.Contains("10 classes from the output of a probe forward pass", loaded.Inferred);
        Assert.Null(loaded.Declaration.Architecture);
    }

    [Fact]
    public void Legacy_upload_is_written_back_as_a_zip_checkpoint_that_reads_again()
    {
        using var loaded = ModelLoader.Load(SharedModel("clean-resnet-cifar10-akamaster/resnet20-12fca82f.th"), new PartialDeclaration());
        var path = Path.Combine(Path.GetTempPath(), $"legacy-back-{Guid.NewGuid():N}{ModelLoader.Extension(loaded.Format)}");
        try
        {
            ModelLoader.Save(loaded.Classifier, loaded.Format, path);
            using var again = ModelLoader.Load(path, loaded.Declaration);
            Assert.Equal(ModelFileFormat.PyTorchStateDict, again.Format);
            Assert.Equal("resnet20", again.Classifier.Architecture);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
