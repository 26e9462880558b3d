using WebDefense.Core.Data;
using WebDefense.Core.Data.Triggers;
using static TorchSharp.torch;

namespace WebDefense.Core.Tests.Data;

public class TriggerTests
{
    private static Tensor Filled(int n, int c, int h, int w, byte v) => full([n, c, h, w], v, ScalarType.Byte);

    [Fact]
    public void BadNetsPatchBottomRight()
    {
        using var scope = NewDisposeScope();
        var x = randint(0, 200, [2, 3, 32, 32], dtype: ScalarType.Byte);
        var y = PatchTrigger.BadNets.ApplyTo(x);
        Assert.True(y[.., .., 29.., 29..].eq(255).all().item<bool>());
        var mask = ones([32, 32], ScalarType.Bool);
        mask[29.., 29..] = zeros([3, 3], ScalarType.Bool);
        Assert.True(y.masked_select(mask.expand_as(y)).eq(x.masked_select(mask.expand_as(x))).all().item<bool>());
        Assert.True(x.lt(200).all().item<bool>()); // input untouched

        var g = new PatchTrigger { Size = 2, Position = "top-left", Color = [100] }.ApplyTo(Filled(1, 1, 5, 5, 7));
        Assert.Equal(100, g[0, 0, 1, 1].item<byte>());
        Assert.Equal(7, g[0, 0, 2, 2].item<byte>());
        // a zero channel in the colour keeps the image (x·[t==0] + t·[t>0])
        var c = new PatchTrigger { X = 1, Y = 2, Width = 2, Height = 1, Color = [0, 9, 255] }.ApplyTo(Filled(1, 3, 4, 4, 50));
        Assert.Equal([50, 9, 255], new[] { c[0, 0, 2, 1], c[0, 1, 2, 2], c[0, 2, 2, 1] }.Select(t => (int)t.item<byte>()));
        Assert.Equal(50, c[0, 1, 2, 3].item<byte>());
    }

    [Fact]
    public void PatchFromImage()
    {
        using var scope = NewDisposeScope();
        var img = Convert.ToBase64String(TestData.Png(2, 2, 77));
        var y = new PatchTrigger { Image = img }.ApplyTo(Filled(1, 3, 6, 6, 1));
        Assert.True(y[.., .., 4.., 4..].eq(77).all().item<bool>());
        Assert.Equal(1, y[0, 0, 3, 3].item<byte>());
    }

    [Fact]
    public void BlendTruncates()
    {
        using var scope = NewDisposeScope();
        var white = Convert.ToBase64String(TestData.Png(3, 3, 255));
        var t = new BlendTrigger { Alpha = 0.2, Image = white };
        Assert.Equal(59, t.ApplyTo(Filled(1, 3, 4, 4, 10))[0, 0, 0, 0].item<byte>());  // 8 + 51 = 59.0
        Assert.Equal(59, t.ApplyTo(Filled(1, 3, 4, 4, 11))[0, 1, 2, 3].item<byte>());  // 8.8 + 51 = 59.8 → 59, not 60
        Assert.Equal(255, t.ApplyTo(Filled(1, 1, 4, 4, 255))[0, 0, 1, 1].item<byte>());

        var noise = new BlendTrigger { Pattern = "noise", Seed = 5, Alpha = 0.5 };
        var p = noise.PatternTensor(1, 4, 4);
        var y = noise.ApplyTo(Filled(2, 1, 4, 4, 100));
        for (int i = 0; i < 4; i++)
        {
            double expected = 0.5 * 100 + 0.5 * p[0, 0, 1, i].item<byte>();
            Assert.Equal((byte)Math.Floor(expected), y[1, 0, 1, i].item<byte>());
        }

        Assert.True(noise.PatternTensor(1, 4, 4).eq(p).all().item<bool>());
    }

    [Fact]
    public void SigFormulaAndClipping()
    {
        using var scope = NewDisposeScope();
        var sig = new SigTrigger();
        var y = sig.ApplyTo(Filled(1, 3, 32, 32, 100));
        foreach (int j in new[] { 0, 1, 3, 5, 16, 31 })
        {
            double p = (float)(40 * Math.Sin(2 * Math.PI * j * 6 / 32));
            Assert.Equal((byte)Math.Floor(Math.Clamp(100 + p, 0, 255)), y[0, 2, 7, j].item<byte>());
        }

        Assert.Equal(136, y[0, 0, 0, 1].item<byte>());   // numpy: uint8(clip(100 + float32(40·sin(2π·6/32)) = 136.955)) = 136
    }

    [Fact]
    public void SigClipsAtBothEnds()
    {
        using var scope = NewDisposeScope();
        var sig = new SigTrigger();
        var hi = sig.ApplyTo(Filled(1, 1, 2, 32, 250));
        var lo = sig.ApplyTo(Filled(1, 1, 2, 32, 5));
        Assert.Equal(255, hi[0, 0, 0, 1].item<byte>());   // 250 + 36.96 → 255
        Assert.Equal(0, lo[0, 0, 1, 5].item<byte>());     // 5 − 36.96 → 0
        Assert.Equal(250, hi[0, 0, 0, 0].item<byte>());   // sin 0 = 0
    }

    [Fact]
    public void BackdoorTestSetOnFashionMnist()
    {
        using var clean = TestData.FashionMnistTest();
        using var bd = BackdoorTestSet.Build(clean, PatchTrigger.BadNets, 0);
        Assert.Equal(9000, bd.Data.Count);
        Assert.True(bd.Data.Labels.ne(0).all().item<bool>());
        using var scope = NewDisposeScope();
        var idx = tensor(bd.SourceIndices.ToArray(), ScalarType.Int64);
        Assert.True(bd.Data.Labels.eq(clean.Labels.index_select(0, idx)).all().item<bool>());
        Assert.True(bd.Data.Images[.., .., 25.., 25..].eq(255).all().item<bool>());
        Assert.True(bd.Data.Images[.., .., ..25, ..].eq(clean.Images.index_select(0, idx)[.., .., ..25, ..]).all().item<bool>());
    }

    [Fact]
    public void PoisoningCountsAndDeterminism()
    {
        using var train = TestData.FashionMnistTest();
        using var a = Poisoning.Poison(train, PatchTrigger.BadNets, 0, 0.1, cleanLabel: false, seed: 1);
        using var b = Poisoning.Poison(train, PatchTrigger.BadNets, 0, 0.1, cleanLabel: false, seed: 1);
        using var c = Poisoning.Poison(train, PatchTrigger.BadNets, 0, 0.1, cleanLabel: false, seed: 2);
        Assert.Equal(1000, a.PoisonedIndices.Count);
        Assert.Equal(a.PoisonedIndices, b.PoisonedIndices);
        Assert.NotEqual(a.PoisonedIndices, c.PoisonedIndices);
        Assert.Equal(a.PoisonedIndices.Count, a.PoisonedIndices.Distinct().Count());
        using var scope = NewDisposeScope();
        var idx = tensor(a.PoisonedIndices.Select(i => (long)i).ToArray(), ScalarType.Int64);
        Assert.True(a.Data.Labels.index_select(0, idx).eq(0).all().item<bool>());
        Assert.True(train.Labels.index_select(0, idx).ne(0).any().item<bool>()); // drawn from all classes
        Assert.True(a.Data.Images.index_select(0, idx)[.., .., 25.., 25..].eq(255).all().item<bool>());
        int untouched = Enumerable.Range(0, train.Count).First(i => !a.PoisonedIndices.Contains(i));
        Assert.True(a.Data.Images[untouched].eq(train.Images[untouched]).all().item<bool>());
        Assert.Equal(train.Labels[untouched].item<long>(), a.Data.Labels[untouched].item<long>());

        using var sig = Poisoning.Poison(train, new SigTrigger(), 3, 0.05, cleanLabel: true, seed: 7);
        Assert.Equal(500, sig.PoisonedIndices.Count);
        var sidx = tensor(sig.PoisonedIndices.Select(i => (long)i).ToArray(), ScalarType.Int64);
        Assert.True(train.Labels.index_select(0, sidx).eq(3).all().item<bool>());
        Assert.True(sig.Data.Labels.eq(train.Labels).all().item<bool>());
        Assert.Throws<ArgumentException>(() => Poisoning.SelectIndices(train, 3, 0.2, cleanLabel: true, seed: 7));
        Assert.Equal(2, Poisoning.PoisonCount(25, 0.1)); // round half to even, like Python
    }

    [Fact]
    public void JsonRoundTrip()
    {
        TriggerSpec[] specs =
        [
            PatchTrigger.BadNets,
            new PatchTrigger { Width = 4, Height = 2, Position = "top-right", Color = [255, 0, 0] },
            new BlendTrigger { Alpha = 0.1, Pattern = "noise", Seed = 3 },
            new SigTrigger { Delta = 20, Frequency = 4 },
        ];
        foreach (var s in specs)
        {
            var back = TriggerSpec.FromJson(s.ToJson());
            Assert.Equal(s.GetType(), back.GetType());
            Assert.Equal(s.ToJson(), back.ToJson());
        }

        Assert.Contains("\"type\":\"sig\"", specs[3].ToJson());
        var parsed = Assert.IsType<PatchTrigger>(TriggerSpec.FromJson("""{"size":3,"type":"patch"}"""));
        Assert.Equal(3, parsed.Size);
        Assert.Equal(0.2, Assert.IsType<BlendTrigger>(TriggerSpec.FromJson("""{"type":"blend","pattern":"noise"}""")).Alpha);
    }

    [Theory]
    [InlineData("""{"type":"blend","alpha":1.5,"pattern":"noise"}""", "alpha")]
    [InlineData("""{"type":"blend","alpha":0.2}""", "exactly one")]
    [InlineData("""{"type":"patch","color":[0,0,0]}""", "black patch")]
    [InlineData("""{"type":"patch","position":"middle"}""", "position")]
    [InlineData("""{"type":"sig","delta":-3}""", "delta")]
    [InlineData("""{"type":"wanet"}""", "invalid trigger")]
    [InlineData("""{"type":"patch","sise":3}""", "invalid trigger")]
    [InlineData("""{"size":3}""", "invalid trigger")]
    public void RejectsInvalidSpecs(string json, string message)
    {
        Assert.Contains(message, Assert.Throws<InvalidTriggerException>(() => TriggerSpec.FromJson(json)).Message);
    }

    [Fact]
    public void RejectsPatchThatDoesNotFit()
    {
        using var scope = NewDisposeScope();
        var ex = Assert.Throws<InvalidTriggerException>(() => new PatchTrigger { Size = 40 }.ApplyTo(Filled(1, 3, 32, 32, 0)));
        Assert.Contains("does not fit", ex.Message);
        Assert.Throws<InvalidTriggerException>(() => new PatchTrigger { X = 30, Y = 0, Size = 3 }.ApplyTo(Filled(1, 3, 32, 32, 0)));
    }

    [Fact]
    public void PreviewIsPng()
    {
        using var data = new ImageDataset(Filled(2, 3, 8, 8, 20), zeros(2, ScalarType.Int64));
        var png = TriggerPreview.RenderPng(data, 1, PatchTrigger.BadNets, scale: 4);
        var img = StbImageSharp.ImageResult.FromMemory(png, StbImageSharp.ColorComponents.RedGreenBlue);
        Assert.Equal(32, img.Width);
        Assert.Equal(255, img.Data[(31 * 32 + 31) * 3]);
        Assert.Equal(20, img.Data[0]);
    }
}
