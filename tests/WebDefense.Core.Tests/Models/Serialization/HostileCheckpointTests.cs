using WebDefense.Core.Models.Serialization;
using static WebDefense.Core.Tests.Models.Serialization.SerializationTestHelpers;

namespace WebDefense.Core.Tests.Models.Serialization;

/// <summary>Hostile and malformed .pt files: every one must fail with a message saying what was found.</summary>
public sealed class HostileCheckpointTests
{
    private static byte[] Zip(byte[] pkl, params (string, byte[])[] more) => MakeZip([("archive/data.pkl", pkl), .. more]);

    [Fact]
    public void Posix_system_is_refused_and_never_run()
    {
        var marker = Path.Combine(Path.GetTempPath(), $"webdefense-pwned-{Guid.NewGuid():N}");
        var e = ReadPtRejects(MaliciousCheckpoint(marker));
        Assert.Contains("'posix.system' is not allowed", e.Message);
        Assert.False(File.Exists(marker));
    }

    [Fact]
    public void Os_system_via_stack_global_protocol4_is_refused()
    {
        var pkl = new PickleBuilder().Proto(4).ShortStr("os").ShortStr("system").Raw(0x93).ShortStr("id").Raw(0x85).Op('R').Op('.').Bytes();
        Assert.Contains("'os.system' is not allowed", ReadPtRejects(Zip(pkl)).Message);
    }

    [Fact]
    public void Builtins_eval_is_refused()
    {
        var pkl = new PickleBuilder().Proto(2).Global("builtins", "eval").Str("1+1").Raw(0x85).Op('R').Op('.').Bytes();
        Assert.Contains("'builtins.eval' is not allowed", ReadPtRejects(Zip(pkl)).Message);
    }

    [Fact]
    public void Unlisted_opcode_is_refused()
    {
        // INST ('i'), which protocol 0 uses to call classes.
        var pkl = new PickleBuilder().Proto(2).Op('(').Op('i').Raw("os\nsystem\n"u8.ToArray()).Op('.').Bytes();
        Assert.Contains("opcode 0x69", ReadPtRejects(Zip(pkl)).Message);
    }

    [Fact]
    public void Whole_pickled_module_is_refused_naming_the_class()
    {
        var pkl = new PickleBuilder().Proto(2).Global("models.vgg", "VGG").Op(')').Raw(0x81).Op('.').Bytes();
        var e = ReadPtRejects(Zip(pkl));
        Assert.Contains("'models.vgg.VGG'", e.Message);
        Assert.Contains("state_dict()", e.Message);
    }

    [Fact]
    public void Storage_entry_shorter_than_numel_is_refused()
    {
        var pkl = new PickleBuilder().OrderedDictStart().Str("w").FloatTensor("0", 4, 0, [4], [1]).EndDict();
        var e = ReadPtRejects(Zip(pkl, ("archive/data/0", new byte[12])));
        Assert.Contains("12 bytes but 4", e.Message);
    }

    [Fact]
    public void Strides_outside_the_storage_are_refused()
    {
        var pkl = new PickleBuilder().OrderedDictStart().Str("w").FloatTensor("0", 4, 1, [2, 2], [100, 1]).EndDict();
        var e = ReadPtRejects(Zip(pkl, ("archive/data/0", new byte[16])));
        Assert.Contains("reaches element 102 of storage '0', which has 4 elements", e.Message);
    }

    [Fact]
    public void Storage_key_with_parent_path_is_refused()
    {
        var pkl = new PickleBuilder().OrderedDictStart().Str("w").FloatTensor("../../etc/passwd", 1, 0, [1], [1]).EndDict();
        var e = ReadPtRejects(Zip(pkl, ("archive/data/0", new byte[4])));
        Assert.Contains("storage key '../../etc/passwd' is not allowed", e.Message);
    }

    [Fact]
    public void Missing_storage_entry_is_refused()
    {
        var pkl = new PickleBuilder().OrderedDictStart().Str("w").FloatTensor("7", 1, 0, [1], [1]).EndDict();
        Assert.Contains("no entry data/7", ReadPtRejects(Zip(pkl)).Message);
    }

    [Fact]
    public void Declared_storage_beyond_the_byte_limit_is_refused_before_reading()
    {
        var pkl = new PickleBuilder().OrderedDictStart().Str("w").FloatTensor("0", 1 << 30, 0, [1], [1]).EndDict();
        var limits = ModelReadLimits.Default with { MaxTotalTensorBytes = 1 << 20 };
        var e = Assert.Throws<WebDefense.Core.Models.ModelFileException>(() =>
            PyTorchCheckpoint.Read(new MemoryStream(Zip(pkl, ("archive/data/0", new byte[4]))), limits));
        Assert.Contains("limit", e.Message);
    }

    [Fact]
    public void Deep_nesting_and_big_pickles_hit_the_limits()
    {
        var deep = new PickleBuilder().Proto(2);
        for (var i = 0; i < 300; i++)
        {
            deep.Op('(');
        }

        Assert.Contains("nesting", ReadPtRejects(Zip(deep.Op('.').Bytes())).Message);
        var limits = ModelReadLimits.Default with { MaxPickleBytes = 10 };
        var e = Assert.Throws<WebDefense.Core.Models.ModelFileException>(() => PyTorchCheckpoint.Read(
            new MemoryStream(Zip(new PickleBuilder().OrderedDictStart().EndDict())), limits));
        Assert.Contains("data.pkl", e.Message);
    }

    [Fact]
    public void Big_endian_byteorder_is_refused()
    {
        var pkl = new PickleBuilder().OrderedDictStart().EndDict();
        Assert.Contains("'big'", ReadPtRejects(Zip(pkl, ("archive/byteorder", "big"u8.ToArray()))).Message);
    }

    [Fact]
    public void Zip_without_data_pkl_and_with_two_data_pkls_are_refused()
    {
        Assert.Contains("no <name>/data.pkl", ReadPtRejects(MakeZip(("x/other.npy", new byte[3]))).Message);
        var pkl = new PickleBuilder().OrderedDictStart().EndDict();
        Assert.Contains("2 data.pkl", ReadPtRejects(MakeZip(("a/data.pkl", pkl), ("b/data.pkl", pkl))).Message);
    }

    [Fact]
    public void Many_keys_viewing_one_storage_cannot_multiply_memory()
    {
        // Two keys each view all 16 floats (64 bytes) of one storage: 128 bytes would be materialised.
        var pkl = new PickleBuilder().OrderedDictStart()
            .Str("a").FloatTensor("0", 16, 0, [16], [1])
            .Str("b").FloatTensor("0", 16, 0, [16], [1])
            .EndDict();
        var file = Zip(pkl, ("archive/data/0", new byte[64]));
        using (var ok = PyTorchCheckpoint.Read(new MemoryStream(file), ModelReadLimits.Default with { MaxTotalTensorBytes = 128 }))
        {
            Assert.Equal(2, ok.Count);
        }

        var e = Assert.Throws<WebDefense.Core.Models.ModelFileException>(() =>
            PyTorchCheckpoint.Read(new MemoryStream(file), ModelReadLimits.Default with { MaxTotalTensorBytes = 100 }));
        Assert.Contains("128 bytes, more than the limits", e.Message);
    }

    [Fact]
    public void Rebuilding_tensors_beyond_the_count_limit_is_refused()
    {
        var b = new PickleBuilder().Proto(2).Op(']').Op('(');
        for (var i = 0; i < 5; i++)
        {
            b.FloatTensor("0", 1, 0, [1], [1]);
        }

        var pkl = b.Op('e').Op('.').Bytes();
        var e = Assert.Throws<WebDefense.Core.Models.ModelFileException>(() => PyTorchCheckpoint.Read(
            new MemoryStream(Zip(pkl, ("archive/data/0", new byte[4]))), ModelReadLimits.Default with { MaxTensorCount = 4 }));
        Assert.Contains("more than 4 tensors", e.Message);
    }

    [Fact]
    public void Items_hidden_below_marks_count_against_the_stack_limit()
    {
        var b = new PickleBuilder().Proto(2);
        for (var i = 0; i < 10; i++)
        {
            b.Op('N').Op('N').Op('(');
        }

        var e = Assert.Throws<WebDefense.Core.Models.ModelFileException>(() => PyTorchCheckpoint.Read(
            new MemoryStream(Zip(b.Op('.').Bytes())), ModelReadLimits.Default with { MaxPickleStackSize = 15 }));
        Assert.Contains("stack is larger", e.Message);
    }

    [Fact]
    public void Numpy_globals_outside_the_inert_set_are_refused()
    {
        var pkl = new PickleBuilder().Proto(2).Global("numpy.testing._private.utils", "runstring").Str("x").Raw(0x85).Op('R').Op('.').Bytes();
        Assert.Contains("'numpy.testing._private.utils.runstring' is not allowed", ReadPtRejects(Zip(pkl)).Message);
        var codecs = new PickleBuilder().Proto(2).Global("_codecs", "encode").Str("x").Str("rot13").Raw(0x86).Op('R').Op('.').Bytes();
        Assert.Contains("encode(str, 'latin1')", ReadPtRejects(Zip(codecs)).Message);
    }
}
