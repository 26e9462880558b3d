using System.IO.Compression;
using System.Text;
using System.Text.Json;
using WebDefense.Core.Models;
using static TorchSharp.torch;

namespace WebDefense.Core.Tests.Models.Serialization;

internal static class SerializationTestHelpers
{
    public static string FixtureDir => Path.Combine(AppContext.BaseDirectory, "fixtures", "checkpoints");

    public static string Fixture(string name) => Path.Combine(FixtureDir, name);

    public static StateDict ReadWith(Func<Stream, StateDict> reader, string fixture)
    {
        using var f = File.OpenRead(Fixture(fixture));
        return reader(f);
    }

    /// <summary>Compares a state dict with the entry of tests/fixtures/checkpoints/expected.json written by PyTorch.</summary>
    public static void AssertMatchesExpected(StateDict sd, string fixture, bool sameOrder = true)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Fixture("expected.json")));
        var expected = doc.RootElement.GetProperty(fixture);
        var names = expected.EnumerateObject().Select(p => p.Name).ToList();
        Assert.Equal(names.OrderBy(n => n, StringComparer.Ordinal), sd.Keys.OrderBy(n => n, StringComparer.Ordinal));
        foreach (var p in expected.EnumerateObject())
        {
            var t = sd[p.Name];
            var e = p.Value;
            Assert.Equal(e.GetProperty("shape").EnumerateArray().Select(x => x.GetInt64()), t.shape);
            Assert.Equal(e.GetProperty("dtype").GetString(), DTypeName(t.dtype));
            using var scope = NewDisposeScope();
            var flat = t.reshape(-1).to_type(ScalarType.Float64);
            var sum = t.numel() == 0 ? 0.0 : flat.sum().item<double>();
            var want = e.GetProperty("sum").GetDouble();
            Assert.True(Math.Abs(sum - want) <= 1e-9 * Math.Max(1, Math.Abs(want)), $"{fixture}:{p.Name} sum {sum} != {want}");
            var first = e.GetProperty("first").EnumerateArray().Select(x => x.GetDouble()).ToArray();
            for (var i = 0; i < first.Length; i++)
            {
                Assert.Equal(first[i], flat[i].item<double>());
            }
        }
    }

    public static string DTypeName(ScalarType t) => t switch
    {
        ScalarType.Float32 => "float32", ScalarType.Float64 => "float64", ScalarType.Float16 => "float16",
        ScalarType.BFloat16 => "bfloat16", ScalarType.Int64 => "int64", ScalarType.Int32 => "int32",
        ScalarType.Int16 => "int16", ScalarType.Int8 => "int8", ScalarType.Byte => "uint8", ScalarType.Bool => "bool",
        _ => t.ToString(),
    };

    public static void AssertSameTensors(StateDict expected, StateDict actual)
    {
        Assert.Equal(expected.Keys, actual.Keys);
        foreach (var (k, t) in expected.Entries)
        {
            var a = actual[k];
            Assert.Equal(t.dtype, a.dtype);
            Assert.Equal(t.shape, a.shape);
            Assert.True(t.eq(a).all().item<bool>(), $"tensor '{k}' differs");
        }
    }

    /// <summary>The same formulas as csharp_expected() in tools/fixtures/make_checkpoint_fixtures.py.</summary>
    public static StateDict MakeKnownStateDict()
    {
        var sd = new StateDict();
        using var scope = NewDisposeScope();
        sd.Add("layer.weight", arange(12, dtype: ScalarType.Float32).reshape(3, 4) * 0.5 - 1);
        sd.Add("layer.bias", tensor(new[] { 0.1, -0.2, 0.3 }, dtype: ScalarType.Float64));
        sd.Add("idx", tensor(new long[] { -(1L << 40), 0, 5 }));
        sd.Add("mask", tensor(new[] { true, false, false, true }));
        sd.Add("half", (arange(4, dtype: ScalarType.Float32) * 0.25).to_type(ScalarType.Float16).reshape(2, 2));
        sd.Add("bf", (arange(3, dtype: ScalarType.Float32) * 2).to_type(ScalarType.BFloat16));
        sd.Add("bn.num_batches_tracked", tensor(17L));
        sd.Add("empty", zeros(0, 3));
        sd.Add("u8", tensor(new byte[] { 1, 2, 250 }));
        return sd;
    }

    /// <summary>A .pt zip whose pickle calls posix.system("touch marker") if anything ever executes it.</summary>
    public static byte[] MaliciousCheckpoint(string marker) =>
        MakeZip(("archive/data.pkl", new PickleBuilder().Proto(2).Global("posix", "system").Str($"touch {marker}").Raw(0x85).Op('R').Op('.').Bytes()));

    public static byte[] MakeZip(params (string Name, byte[] Content)[] entries)
    {
        var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var (name, content) in entries)
            {
                using var s = zip.CreateEntry(name, CompressionLevel.NoCompression).Open();
                s.Write(content);
            }
        }

        return ms.ToArray();
    }

    /// <summary>Copies a zip, letting <paramref name="change"/> replace (or drop, with null) each entry's content.</summary>
    public static byte[] RewriteZip(byte[] zipBytes, Func<string, byte[], byte[]?> change)
    {
        using var src = new ZipArchive(new MemoryStream(zipBytes), ZipArchiveMode.Read);
        var entries = new List<(string, byte[])>();
        foreach (var e in src.Entries)
        {
            using var s = e.Open();
            var ms = new MemoryStream();
            s.CopyTo(ms);
            var content = change(e.FullName, ms.ToArray());
            if (content is not null)
            {
                entries.Add((e.FullName, content));
            }
        }

        return MakeZip([.. entries]);
    }

    public static ModelFileException ReadPtRejects(byte[] file) =>
        Assert.Throws<ModelFileException>(() => WebDefense.Core.Models.Serialization.PyTorchCheckpoint.Read(new MemoryStream(file)).Dispose());
}

/// <summary>Builds pickles opcode by opcode for hostile-input tests.</summary>
internal sealed class PickleBuilder
{
    private readonly MemoryStream _ms = new();

    public PickleBuilder Op(char c)
    {
        _ms.WriteByte((byte)c);
        return this;
    }

    public PickleBuilder Raw(params byte[] b)
    {
        _ms.Write(b);
        return this;
    }

    public PickleBuilder Proto(byte p) => Raw(0x80, p);

    public PickleBuilder Global(string module, string name) => Op('c').Raw(Encoding.ASCII.GetBytes($"{module}\n{name}\n"));

    public PickleBuilder Str(string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        Op('X').Raw(BitConverter.GetBytes(b.Length));
        return Raw(b);
    }

    public PickleBuilder ShortStr(string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        return Raw(0x8c, (byte)b.Length).Raw(b);
    }

    public PickleBuilder Int(int v) => Op('J').Raw(BitConverter.GetBytes(v));

    public PickleBuilder IntTuple(params int[] v)
    {
        Op('(');
        foreach (var x in v)
        {
            Int(x);
        }

        return Op('t');
    }

    /// <summary><c>_rebuild_tensor_v2(('storage', torch.FloatStorage, key, 'cpu', numel), offset, size, stride, False, OrderedDict())</c>.</summary>
    public PickleBuilder FloatTensor(string key, int numel, int offset, int[] size, int[] stride) =>
        Global("torch._utils", "_rebuild_tensor_v2").Op('(')
            .Op('(').Str("storage").Global("torch", "FloatStorage").Str(key).Str("cpu").Int(numel).Op('t').Op('Q')
            .Int(offset).IntTuple(size).IntTuple(stride).Raw(0x89).Global("collections", "OrderedDict").Op(')').Op('R')
            .Op('t').Op('R');

    public PickleBuilder OrderedDictStart() => Proto(2).Global("collections", "OrderedDict").Op(')').Op('R').Op('(');

    public byte[] EndDict() => Op('u').Op('.').Bytes();

    public byte[] Bytes() => _ms.ToArray();
}
