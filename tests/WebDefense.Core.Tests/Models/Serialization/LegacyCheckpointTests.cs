using System.Text.Json;
using WebDefense.Core.Models;
using WebDefense.Core.Models.Serialization;
using static TorchSharp.torch;
using static WebDefense.Core.Tests.Models.Serialization.SerializationTestHelpers;

namespace WebDefense.Core.Tests.Models.Serialization;

/// <summary>
/// The pre-1.6 torch.save format: files written by PyTorch 1.13 with _use_new_zipfile_serialization=False
/// (tools/fixtures/make_byom_fixtures.py → tests/fixtures/byom) and hand-built hostile variants.
/// </summary>
public sealed class LegacyCheckpointTests
{
    private static string Byom(string name) => Path.Combine(AppContext.BaseDirectory, "fixtures", "byom", name);

    private static StateDict ReadByom(string name, out CheckpointContents contents)
    {
        using var f = File.OpenRead(Byom(name));
        return PyTorchCheckpoint.Read(f, out contents);
    }

    private static void AssertAsPyTorch(StateDict sd, string name)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Byom("expected.json")));
        var expected = doc.RootElement.GetProperty(name);
        // expected.json is written with sorted keys; the order itself is checked where it matters.
        Assert.Equal(expected.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal), sd.Keys.Order(StringComparer.Ordinal));
        foreach (var p in expected.EnumerateObject())
        {
            var t = sd[p.Name];
            Assert.Equal(p.Value.GetProperty("shape").EnumerateArray().Select(x => x.GetInt64()), t.shape);
            Assert.Equal(p.Value.GetProperty("dtype").GetString(), DTypeName(t.dtype));
            using var scope = NewDisposeScope();
            var flat = t.reshape(-1).to_type(ScalarType.Float64);
            Assert.Equal(p.Value.GetProperty("sum").GetDouble(), t.numel() == 0 ? 0 : flat.sum().item<double>(), 9);
            var first = p.Value.GetProperty("first").EnumerateArray().Select(x => x.GetDouble()).ToArray();
            for (var i = 0; i < first.Length; i++)
            {
                Assert.Equal(first[i], flat[i].item<double>());
            }
        }
    }

    [Fact]
    public void Plain_state_dict_written_by_pytorch_is_read_exactly()
    {
        Assert.Equal(ModelFileFormat.PyTorchLegacy, ModelFormatDetector.Detect(File.OpenRead(Byom("legacy_sd.pt"))));
        using var sd = ReadByom("legacy_sd.pt", out var contents);
        AssertAsPyTorch(sd, "legacy_sd.pt");
        Assert.Null(contents.Container);
        Assert.Empty(contents.StrippedPrefixes);
        Assert.Empty(contents.Ignored);
        Assert.Equal(3L, sd["1.num_batches_tracked"].item<long>());
        Assert.Equal(["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked", "5.weight", "5.bias"], sd.Keys);
    }

    [Fact]
    public void Older_fixture_from_the_checkpoint_script_now_reads_like_its_zip_twin()
    {
        using var legacy = ReadWith(s => PyTorchCheckpoint.Read(s), "legacy.pt");
        AssertMatchesExpected(legacy, "small_sd.pt");
    }

    [Fact]
    public void Training_checkpoint_is_unwrapped_prefix_stripped_and_the_rest_reported()
    {
        using var sd = ReadByom("legacy_wrapped.pt", out var contents);
        AssertAsPyTorch(sd, "legacy_wrapped.pt");
        Assert.Equal("state_dict", contents.Container);
        Assert.Equal(["module."], contents.StrippedPrefixes);
        Assert.Equal(["epoch (int 7)", "best_acc (float 91.25)", "optimizer (dict of 2 entries)"], contents.Ignored);
    }

    [Fact]
    public void Views_sharing_one_storage_come_out_as_pytorch_made_them()
    {
        using var sd = ReadByom("legacy_views.pt", out _);
        AssertAsPyTorch(sd, "legacy_views.pt");
        using var scope = NewDisposeScope();
        Assert.True(sd["t"].eq(sd["full"].t()).all().item<bool>());
    }

    [Fact]
    public void Os_system_payload_is_refused_and_never_run()
    {
        var e = Assert.Throws<ModelFileException>(() => ReadByom("legacy_hostile_system.pt", out _).Dispose());
        Assert.Contains("'posix.system' is not allowed", e.Message);
        Assert.False(File.Exists("/tmp/webdefense-legacy-pwned"));
    }

    [Fact]
    public void Whole_pickled_module_is_refused_with_what_to_save_instead()
    {
        var e = Assert.Throws<ModelFileException>(() => ReadByom("legacy_whole_module.pt", out _).Dispose());
        Assert.Contains("is not allowed", e.Message);
        Assert.Contains("state_dict()", e.Message);
        Assert.DoesNotContain("torch.load", e.Message);
    }

    // ---- hand-built files: magic, version, sys info, object, keys, then (int64 count, data) per key ----

    private static readonly byte[] Magic = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, (byte)'.'];
    private static readonly byte[] Version = [0x80, 0x02, (byte)'M', 0xe9, 0x03, (byte)'.'];

    private static byte[] File_(byte[] obj, string[] keys, (long Count, int Bytes)[] storages, bool littleEndian = true, byte[]? magic = null)
    {
        var ms = new MemoryStream();
        ms.Write(magic ?? Magic);
        ms.Write(Version);
        ms.Write(littleEndian
            ? new PickleBuilder().Proto(2).Op('}').Op('.').Bytes()
            : new PickleBuilder().Proto(2).Op('}').Str("little_endian").Raw(0x89).Op('s').Op('.').Bytes());
        ms.Write(obj);
        var list = new PickleBuilder().Proto(2).Op(']').Op('(');
        foreach (var k in keys)
        {
            list.Str(k);
        }

        ms.Write(list.Op('e').Op('.').Bytes());
        foreach (var (count, bytes) in storages)
        {
            ms.Write(BitConverter.GetBytes(count));
            ms.Write(Enumerable.Range(0, bytes).Select(i => (byte)(i % 7)).ToArray());
        }

        return ms.ToArray();
    }

    private static byte[] OneTensor(string key = "0", int numel = 4) =>
        new PickleBuilder().OrderedDictStart().Str("w").FloatTensor(key, numel, 0, [numel], [1]).EndDict();

    private static ModelFileException Rejects(byte[] file, ModelReadLimits? limits = null) =>
        Assert.Throws<ModelFileException>(() => PyTorchCheckpoint.Read(new MemoryStream(file), limits).Dispose());

    [Fact]
    public void Hand_built_file_reads()
    {
        using var sd = PyTorchCheckpoint.Read(new MemoryStream(File_(OneTensor(), ["0"], [(4, 16)])));
        Assert.Equal([4L], sd["w"].shape);
    }

    [Fact]
    public void Storage_count_that_differs_from_its_declaration_is_refused()
    {
        Assert.Contains("holds 5 elements in the file but 4 were declared", Rejects(File_(OneTensor(), ["0"], [(5, 20)])).Message);
    }

    [Fact]
    public void Truncated_storage_data_is_refused()
    {
        Assert.Contains("truncated", Rejects(File_(OneTensor(), ["0"], [(4, 15)])).Message);
        Assert.Contains("truncated at storage '0'", Rejects(File_(OneTensor(), ["0"], [])).Message);
    }

    [Fact]
    public void Key_list_naming_an_undeclared_storage_is_refused()
    {
        Assert.Contains("which its object does not declare", Rejects(File_(OneTensor(), ["9"], [(4, 16)])).Message);
        Assert.Contains("lists 2 storages but its object declares 1", Rejects(File_(OneTensor(), ["0", "0"], [(4, 16), (4, 16)])).Message);
    }

    [Fact]
    public void Huge_declared_storage_is_refused_before_allocation()
    {
        var e = Rejects(File_(OneTensor(numel: int.MaxValue), ["0"], [(int.MaxValue, 0)]));
        Assert.Contains("more than the file or the limit holds", e.Message);
        var limited = Rejects(File_(OneTensor(), ["0"], [(4, 16)]), ModelReadLimits.Default with { MaxTotalTensorBytes = 8 });
        Assert.Contains("more than the file or the limit holds", limited.Message);
    }

    [Fact]
    public void Big_endian_and_foreign_pickles_are_refused()
    {
        Assert.Contains("big-endian", Rejects(File_(OneTensor(), ["0"], [(4, 16)], littleEndian: false)).Message);
        var plain = new PickleBuilder().Proto(2).Op('}').Op('.').Bytes();
        var e = Rejects(plain);
        Assert.Contains("without torch.save's magic number", e.Message);
        Assert.DoesNotContain("torch.load", e.Message);
    }

    [Fact]
    public void Globals_in_the_header_pickles_are_refused()
    {
        var sneaky = new PickleBuilder().Proto(2).Global("os", "system").Str("id").Raw(0x85).Op('R').Op('.').Bytes();
        var file = Magic.Concat(sneaky).ToArray();
        Assert.Contains("'os.system' is not allowed", Rejects(file).Message);
    }
}
