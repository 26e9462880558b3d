using WebDefense.Core.Models;
using WebDefense.Core.Models.Serialization;
using static WebDefense.Core.Tests.Models.Serialization.SerializationTestHelpers;

namespace WebDefense.Core.Tests.Models.Serialization;

public sealed class ModelFormatDetectorTests
{
    [Theory]
    [InlineData("small_sd.pt", ModelFileFormat.PyTorchStateDict)]
    [InlineData("protocol4.pt", ModelFileFormat.PyTorchStateDict)]
    [InlineData("wrapped_model.pt", ModelFileFormat.PyTorchStateDict)]
    [InlineData("torchscript.pt", ModelFileFormat.TorchScript)]
    [InlineData("mixed.safetensors", ModelFileFormat.Safetensors)]
    public void Detects_fixture_formats(string fixture, ModelFileFormat expected)
    {
        using var f = File.OpenRead(Fixture(fixture));
        Assert.Equal(expected, ModelFormatDetector.Detect(f));
        Assert.Equal(0, f.Position);
    }

    [Fact]
    public void Detects_TorchSharp_dat()
    {
        using var sd = MakeKnownStateDict();
        var ms = new MemoryStream();
        TorchSharpStateFile.Write(sd, ms);
        ms.Position = 0;
        Assert.Equal(ModelFileFormat.TorchSharp, ModelFormatDetector.Detect(ms));
    }

    [Fact]
    public void Legacy_files_are_recognised_and_other_pickles_and_unknown_files_refused()
    {
        using var legacy = File.OpenRead(Fixture("legacy.pt"));
        Assert.Equal(ModelFileFormat.PyTorchLegacy, ModelFormatDetector.Detect(legacy));
        var pickle = Assert.Throws<ModelFileException>(() => ModelFormatDetector.Detect(new MemoryStream([0x80, 0x02, (byte)'}', (byte)'.'])));
        Assert.Contains("without torch.save's magic number", pickle.Message);
        Assert.DoesNotContain("torch.load", pickle.Message);
        Assert.Contains("unknown", Assert.Throws<ModelFileException>(() =>
            ModelFormatDetector.Detect(new MemoryStream("\u0000\u0001garbage garbage"u8.ToArray()))).Message);
        Assert.Contains("no */data.pkl", Assert.Throws<ModelFileException>(() =>
            ModelFormatDetector.Detect(new MemoryStream(MakeZip(("a.npy", new byte[4]))))).Message);
    }
}
