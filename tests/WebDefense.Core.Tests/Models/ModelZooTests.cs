using TorchSharp;
using WebDefense.Core.Models;
using WebDefense.Core.Models.Zoo;
using static TorchSharp.torch;

namespace WebDefense.Core.Tests.Models;

public class ModelZooTests
{
    public static TheoryData<string> Archs => new(ModelZoo.Names.Select(n => n.Name));

    [Theory]
    [MemberData(nameof(Archs))]
    public void StateDictKeysShapesAndOrderMatchPyTorch(string arch)
    {
        var manifest = Fixtures.Manifest(arch);
        using var model = ModelZoo.Create(arch, 10, 3);
        var expected = manifest.GetProperty("state_dict").EnumerateArray()
            .Select(e => (Key: e.GetProperty("key").GetString()!, Shape: string.Join("x", e.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64())),
                Dtype: e.GetProperty("dtype").GetString()!))
            .ToList();
        var actual = model.state_dict()
            .Select(kv => (Key: kv.Key, Shape: string.Join("x", kv.Value.shape), Dtype: kv.Value.dtype == ScalarType.Int64 ? "int64" : kv.Value.dtype == ScalarType.Float32 ? "float32" : kv.Value.dtype.ToString()))
            .ToList();
        Assert.Equal(expected.Count, actual.Count);
        for (var i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i], actual[i]);
        }

        Assert.Equal(manifest.GetProperty("parameter_count").GetInt64(), ModelZoo.ParameterCount(model));
    }

    [Fact]
    public void PreActResNet18MatchesReferenceCounts()
    {
        using var model = ModelZoo.Create("preactresnet18", 10, 3);
        Assert.Equal(11_171_146, ModelZoo.ParameterCount(model));
        var bns = model.named_modules().Where(m => m.module is TorchSharp.Modules.BatchNorm2d).ToList();
        Assert.Equal(16, bns.Count);
        Assert.Equal(3_392, bns.Sum(b => ((TorchSharp.Modules.BatchNorm2d)b.module).weight!.shape[0]));
        var convs = model.named_modules().Where(m => m.module is TorchSharp.Modules.Conv2d).ToList();
        Assert.Equal(20, convs.Count);
        Assert.Equal(3_904, convs.Where(c => !c.name.Contains("shortcut")).Sum(c => ((TorchSharp.Modules.Conv2d)c.module).weight.shape[0]));
        Assert.DoesNotContain(bns, b => b.name == "bn1");
    }

    [Theory]
    [InlineData("preactresnet18", 32)]
    [InlineData("resnet18", 32)]
    [InlineData("vgg19_bn", 32)]
    [InlineData("mobilenet_v2", 32)]
    [InlineData("smallcnn", 28)]
    [InlineData("smallcnn", 32)]
    [InlineData("preactresnet18", 28)]
    public void VariantsWith43ClassesAndOneChannelRun(string arch, int size)
    {
        using var scope = NewDisposeScope();
        using var model = ModelZoo.Create(arch, 43, 1);
        model.eval();
        using var noGrad = no_grad();
        var y = model.call(randn(2, 1, size, size));
        Assert.Equal([2L, 43L], y.shape);
        Assert.True(y.isfinite().all().item<bool>());

        model.train();
        using var grad = enable_grad();
        var loss = nn.functional.cross_entropy(model.call(randn(2, 1, size, size)), tensor(new long[] { 0, 42 }));
        loss.backward();
        Assert.True(float.IsFinite(loss.item<float>()));
    }

    [Fact]
    public void UnknownNameListsValidNames()
    {
        var e = Assert.Throws<ArgumentException>(() => ModelZoo.Create("resnet50", 10, 3));
        foreach (var n in ModelZoo.Names)
        {
            Assert.Contains(n.Name, e.Message);
            Assert.False(string.IsNullOrWhiteSpace(n.Description));
        }
    }

    [Fact]
    public void StateDictFromModuleHasBnBuffers()
    {
        using var model = ModelZoo.Create("smallcnn", 10, 1);
        using var sd = StateDict.FromModule(model);
        Assert.True(sd.ContainsKey("bn1.running_mean"));
        Assert.True(sd.ContainsKey("bn1.running_var"));
        Assert.Equal(ScalarType.Int64, sd["bn1.num_batches_tracked"].dtype);
    }
}
