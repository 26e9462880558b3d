using System.IO.Compression;
using WebDefense.Core.Data;

namespace WebDefense.Core.Tests.Data;

/// <summary>Where the real data sets and committed fixtures are.</summary>
internal static class TestData
{
    public const string FashionMnistDir = "/usr/share/datasets/fashion-mnist";

    /// <summary>The <c>shared</c> folder: the first ancestor of the test binaries that contains <c>shared/data</c>.</summary>
    public static string Shared
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (Directory.Exists(Path.Combine(dir.FullName, "shared", "data")))
                {
                    return Path.Combine(dir.FullName, "shared");
                }
            }

            throw new DirectoryNotFoundException($"no shared/data above {AppContext.BaseDirectory}");
        }
    }

    public static string SharedData(params string[] parts) => Path.Combine([Shared, "data", .. parts]);

    public static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "fixtures", "data", name);

    public static ImageDataset FashionMnistTest() =>
        IdxReader.Read(Path.Combine(FashionMnistDir, "t10k-images-idx3-ubyte.gz"), Path.Combine(FashionMnistDir, "t10k-labels-idx1-ubyte.gz"));

    public static long[] LabelCounts(ImageDataset data, int classes)
    {
        var counts = new long[classes];
        foreach (var l in data.Labels.data<long>())
        {
            counts[l]++;
        }

        return counts;
    }

    /// <summary>A zip built in memory from (name, content) pairs.</summary>
    public static byte[] Zip(IEnumerable<(string Name, byte[] Data)> entries, Action<ZipArchiveEntry, int>? tweak = null)
    {
        using var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
        {
            int k = 0;
            foreach (var (name, data) in entries)
            {
                var e = zip.CreateEntry(name, CompressionLevel.Optimal);
                tweak?.Invoke(e, k++);
                using var s = e.Open();
                s.Write(data);
            }
        }

        return ms.ToArray();
    }

    /// <summary>A w×h RGB PNG filled with one value.</summary>
    public static byte[] Png(int w, int h, byte value = 128)
    {
        using var ms = new MemoryStream();
        var px = Enumerable.Repeat(value, w * h * 3).ToArray();
        new StbImageWriteSharp.ImageWriter().WritePng(px, w, h, StbImageWriteSharp.ColorComponents.RedGreenBlue, ms);
        return ms.ToArray();
    }
}
