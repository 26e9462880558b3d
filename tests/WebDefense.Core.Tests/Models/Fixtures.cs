using System.IO.Compression;
using System.Text.Json;
using static TorchSharp.torch;

namespace WebDefense.Core.Tests.Models;

/// <summary>Access to tests/fixtures/interop (copied to the output as fixtures/interop).</summary>
internal static class Fixtures
{
    public static string Interop(string name) => Path.Combine(AppContext.BaseDirectory, "fixtures", "interop", name);

    /// <summary>A fixture path; <c>.gz</c> fixtures are decompressed once into a temp folder.</summary>
    public static string Resolve(string name)
    {
        var plain = Interop(name);
        if (File.Exists(plain))
        {
            return plain;
        }

        var gz = plain + ".gz";
        Assert.True(File.Exists(gz), $"fixture {name} (or {name}.gz) missing");
        var dir = Path.Combine(Path.GetTempPath(), "webdefense-fixtures-" + Environment.ProcessId);
        Directory.CreateDirectory(dir);
        var target = Path.Combine(dir, name);
        lock (Lock)
        {
            if (!File.Exists(target))
            {
                var tmp = target + ".part";
                using (var src = new GZipStream(File.OpenRead(gz), CompressionMode.Decompress))
                using (var dst = File.Create(tmp))
                {
                    src.CopyTo(dst);
                }

                File.Move(tmp, target, overwrite: true);
            }
        }

        return target;
    }

    private static readonly object Lock = new();

    public static float[] ReadF32(string name)
    {
        var bytes = File.ReadAllBytes(Resolve(name));
        var result = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, result, 0, result.Length * 4);
        return result;
    }

    public static Tensor ReadTensor(string name, params long[] shape) => tensor(ReadF32(name)).reshape(shape);

    public static JsonElement Manifest(string arch)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Interop(Path.Combine("manifests", arch + ".json"))));
        return doc.RootElement.Clone();
    }

    /// <summary>The shared folder (…/shared with data/ inside), found by walking up from the test binaries.</summary>
    public static string? SharedDir()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            var candidate = Path.Combine(d.FullName, "shared");
            if (Directory.Exists(Path.Combine(candidate, "data")))
            {
                return candidate;
            }

            if (d.Name == "shared" && Directory.Exists(Path.Combine(d.FullName, "data")))
            {
                return d.FullName;
            }
        }

        return null;
    }

    public static double MaxAbsDiff(Tensor a, Tensor b) => (a - b).abs().max().item<float>();
}
