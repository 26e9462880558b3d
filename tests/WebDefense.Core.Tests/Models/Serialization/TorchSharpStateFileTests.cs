using TorchSharp;
using WebDefense.Core.Models;
using WebDefense.Core.Models.Serialization;
using static TorchSharp.torch;
using static WebDefense.Core.Tests.Models.Serialization.SerializationTestHelpers;

namespace WebDefense.Core.Tests.Models.Serialization;

public sealed class TorchSharpStateFileTests
{
    private static nn.Module<Tensor, Tensor> MakeModule() =>
        nn.Sequential(("fc", nn.Linear(3, 4)), ("bn", nn.BatchNorm1d(4)), ("out", nn.Linear(4, 2)));

    [Fact]
    public void TorchSharp_Module_load_reads_our_writer_output()
    {
        using var source = MakeModule();
        using var sd = StateDict.FromModule(source);
        using (no_grad())
        {
            var i = 0;
            foreach (var (_, t) in sd.Entries)
            {
                t.copy_(arange(t.numel(), dtype: ScalarType.Float64).reshape(t.shape).to_type(t.dtype) + i++);
            }
        }

        var path = Path.Combine(Path.GetTempPath(), $"webdefense-{Guid.NewGuid():N}.dat");
        try
        {
            using (var f = File.Create(path))
            {
                TorchSharpStateFile.Write(sd, f);
            }

            using var target = MakeModule();
            target.load(path);
            using var loaded = StateDict.FromModule(target);
            AssertSameTensors(sd, loaded);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Reads_files_written_by_Module_save()
    {
        using var m = MakeModule();
        var path = Path.Combine(Path.GetTempPath(), $"webdefense-{Guid.NewGuid():N}.dat");
        try
        {
            m.save(path);
            using var expected = StateDict.FromModule(m);
            using var f = File.OpenRead(path);
            using var sd = TorchSharpStateFile.Read(f);
            AssertSameTensors(expected, sd);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Round_trips_all_dtypes()
    {
        using var sd = MakeKnownStateDict();
        var ms = new MemoryStream();
        TorchSharpStateFile.Write(sd, ms);
        ms.Position = 0;
        using var back = TorchSharpStateFile.Read(ms);
        AssertSameTensors(sd, back);
    }

    [Fact]
    public void Hostile_dat_files_are_refused()
    {
        // count 1, name "w", dtype code 6 (float32), rank 1, dim 2^40 → beyond the byte limit
        byte[] huge = [1, 1, (byte)'w', 6, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
        Assert.Contains("limit", Assert.Throws<ModelFileException>(() => TorchSharpStateFile.Read(new MemoryStream(huge))).Message);
        byte[] truncated = [1, 1, (byte)'w', 6, 1, 4, 0, 0];
        Assert.Contains("truncated", Assert.Throws<ModelFileException>(() => TorchSharpStateFile.Read(new MemoryStream(truncated))).Message);
        byte[] badType = [1, 1, (byte)'w', 9, 0];
        Assert.Contains("dtype code 9", Assert.Throws<ModelFileException>(() => TorchSharpStateFile.Read(new MemoryStream(badType))).Message);
    }
}
