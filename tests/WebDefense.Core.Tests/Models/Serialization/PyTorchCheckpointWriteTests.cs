using System.IO.Compression;
using WebDefense.Core.Models.Serialization;
using static WebDefense.Core.Tests.Models.Serialization.SerializationTestHelpers;

namespace WebDefense.Core.Tests.Models.Serialization;

/// <summary>
/// PyTorchCheckpoint.Write. Proof that PyTorch reads our output: from_csharp/written_by_csharp.pt is what this writer
/// produces (checked byte for byte below); tools/fixtures/make_checkpoint_fixtures.py torch.load()s it with PyTorch
/// 1.13, checks every value and re-saves it as from_csharp/resaved_by_python.pt, which is read back here.
/// To regenerate after changing the writer: WEBDEFENSE_WRITE_FIXTURES=1 dotnet test … then run the script.
/// </summary>
public sealed class PyTorchCheckpointWriteTests
{
    private static byte[] WriteKnown()
    {
        using var sd = MakeKnownStateDict();
        var ms = new MemoryStream();
        PyTorchCheckpoint.Write(sd, ms, "written_by_csharp");
        return ms.ToArray();
    }

    [Fact]
    public void Own_reader_reads_what_the_writer_writes()
    {
        using var sd = MakeKnownStateDict();
        using var back = PyTorchCheckpoint.Read(new MemoryStream(WriteKnown()));
        AssertSameTensors(sd, back);
    }

    [Fact]
    public void Writer_uses_stored_entries_under_one_prefix_with_version_3()
    {
        using var zip = new ZipArchive(new MemoryStream(WriteKnown()), ZipArchiveMode.Read);
        Assert.All(zip.Entries, e => Assert.StartsWith("written_by_csharp/", e.FullName));
        Assert.All(zip.Entries, e => Assert.Equal(e.Length, e.CompressedLength));
        using var v = new StreamReader(zip.GetEntry("written_by_csharp/version")!.Open());
        Assert.Equal("3\n", v.ReadToEnd());
        Assert.Equal(9, zip.Entries.Count(e => e.FullName.StartsWith("written_by_csharp/data/", StringComparison.Ordinal)));
    }

    [Fact]
    public void Writer_output_is_the_committed_file_that_PyTorch_loaded()
    {
        var bytes = WriteKnown();
        if (Environment.GetEnvironmentVariable("WEBDEFENSE_WRITE_FIXTURES") == "1")
        {
            var dir = AppContext.BaseDirectory;
            while (!Directory.Exists(Path.Combine(dir, "tests", "fixtures")))
            {
                dir = Path.GetDirectoryName(dir) ?? throw new InvalidOperationException("repository root not found");
            }

            var target = Path.Combine(dir, "tests", "fixtures", "checkpoints", "from_csharp", "written_by_csharp.pt");
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.WriteAllBytes(target, bytes);
        }

        Assert.Equal(File.ReadAllBytes(Fixture("from_csharp/written_by_csharp.pt")), bytes);
    }

    [Fact]
    public void File_resaved_by_PyTorch_from_our_output_has_the_same_values()
    {
        using var sd = MakeKnownStateDict();
        using var f = File.OpenRead(Fixture("from_csharp/resaved_by_python.pt"));
        using var back = PyTorchCheckpoint.Read(f);
        AssertSameTensors(sd, back);
    }

    [Fact]
    public void Python_fixtures_survive_our_write_then_read()
    {
        using var sd = ReadWith(s => PyTorchCheckpoint.Read(s), "mixed_dtypes.pt");
        var ms = new MemoryStream();
        PyTorchCheckpoint.Write(sd, ms);
        ms.Position = 0;
        using var back = PyTorchCheckpoint.Read(ms);
        AssertMatchesExpected(back, "mixed_dtypes.pt");
    }
}
