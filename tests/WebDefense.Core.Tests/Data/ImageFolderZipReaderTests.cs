using System.Formats.Tar;
using System.IO.Compression;
using WebDefense.Core.Data;

namespace WebDefense.Core.Tests.Data;

public class ImageFolderZipReaderTests
{
    /// <summary>The first <paramref name="perClass"/> JPEGs of each class from the shared CIFAR-10 test tarball, as a zip.</summary>
    private static (byte[] Zip, Dictionary<string, int> Counts) CifarZip(int perClass)
    {
        var counts = new Dictionary<string, int>();
        var entries = new List<(string, byte[])>();
        using var gz = new GZipStream(File.OpenRead(TestData.SharedData("cifar10-jpeg", "cifar10-jpeg-test.tar.gz")), CompressionMode.Decompress);
        using var tar = new TarReader(gz);
        while (tar.GetNextEntry() is { } e)
        {
            var parts = e.Name.Split('/');
            if (e.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile) || parts.Length != 3)
            {
                continue;
            }

            if (counts.GetValueOrDefault(parts[1]) >= perClass)
            {
                continue;
            }

            counts[parts[1]] = counts.GetValueOrDefault(parts[1]) + 1;
            using var ms = new MemoryStream();
            e.DataStream!.CopyTo(ms);
            entries.Add((e.Name, ms.ToArray()));
        }

        return (TestData.Zip(entries), counts);
    }

    [Fact]
    public void CifarJpegFolders()
    {
        var (zip, counts) = CifarZip(30);
        Assert.Equal(10, counts.Count);
        using var data = DatasetReader.Read(zip, "cifar.zip");
        Assert.Equal([300L, 3, 32, 32], data.Data.Images.shape);
        var names = counts.Keys.OrderBy(k => k, StringComparer.Ordinal).ToArray();
        Assert.Equal(names, data.ClassNames);
        Assert.Equal("airplane", data.ClassNames![0]);
        Assert.All(TestData.LabelCounts(data.Data, 10), c => Assert.Equal(30, c));

        using var grey = ImageFolderZipReader.Read(zip, "cifar.zip", new DatasetReadOptions { Channels = 1, TargetSize = (16, 20) });
        Assert.Equal([300L, 1, 16, 20], grey.Data.Images.shape);
    }

    [Fact]
    public void FlatLayoutAndJunkAndResize()
    {
        var zip = TestData.Zip([("b/1.png", TestData.Png(4, 4, 10)), ("a/2.png", TestData.Png(4, 4, 200)), ("__MACOSX/a/._2.png", [1, 2]), ("a/.DS_Store", [0])]);
        using var data = ImageFolderZipReader.Read(zip, "x.zip");
        Assert.Equal(["a", "b"], data.ClassNames);
        Assert.Equal([0L, 1], data.Data.Labels.data<long>().ToArray());
        Assert.Equal(200, data.Data.Images[0, 2, 3, 3].item<byte>());

        var mixed = TestData.Zip([("a/1.png", TestData.Png(4, 4)), ("b/2.png", TestData.Png(5, 4))]);
        Assert.Contains("b/2.png", Assert.Throws<DatasetFileException>(() => ImageFolderZipReader.Read(mixed, "m.zip")).Message);
        using var resized = ImageFolderZipReader.Read(mixed, "m.zip", new DatasetReadOptions { TargetSize = (8, 8) });
        Assert.Equal([2L, 3, 8, 8], resized.Data.Images.shape);
        Assert.True(resized.Data.Images.eq(128).all().item<bool>());
    }

    [Theory]
    [InlineData("../evil/1.png", "traversal")]
    [InlineData("a/../../1.png", "traversal")]
    [InlineData("/etc/a/1.png", "absolute")]
    [InlineData("a\\1.png", "backslash")]
    [InlineData("a/notes.txt", "not a .png")]
    [InlineData("a/b/c/d.png", "class folders")]
    public void RejectsHostileNames(string name, string message)
    {
        var zip = TestData.Zip([("a/0.png", TestData.Png(4, 4)), (name, TestData.Png(4, 4))]);
        Assert.Contains(message, Assert.Throws<DatasetFileException>(() => DatasetReader.Read(zip, "h.zip")).Message);
    }

    [Fact]
    public void RejectsSymlinks()
    {
        var zip = TestData.Zip([("a/0.png", TestData.Png(4, 4)), ("a/1.png", "/etc/passwd"u8.ToArray())], (e, k) => { if (k == 1) e.ExternalAttributes = unchecked((int)0xA1FF0000); });
        Assert.Contains("symbolic link", Assert.Throws<DatasetFileException>(() => DatasetReader.Read(zip, "l.zip")).Message);
    }

    [Fact]
    public void RejectsTooManyFiles()
    {
        var png = TestData.Png(2, 2);
        var zip = TestData.Zip(Enumerable.Range(0, 50).Select(i => ($"a/{i}.png", png)));
        var limits = new DatasetReadLimits { MaxArchiveEntries = 40 };
        Assert.Contains("holds 50 entries; the limit is 40",
            Assert.Throws<DatasetFileException>(() => DatasetReader.Read(zip, "many.zip", new DatasetReadOptions { Limits = limits })).Message);
    }

    [Fact]
    public void RejectsZipBomb()
    {
        var zip = TestData.Zip([("a/0.png", TestData.Png(4, 4)), ("a/1.png", new byte[64 << 20])]);
        Assert.True(zip.Length < 1 << 20);
        Assert.Contains("zip bomb", Assert.Throws<DatasetFileException>(() => DatasetReader.Read(zip, "bomb.zip")).Message);
        var small = new DatasetReadOptions { Limits = new DatasetReadLimits { MaxDecompressedBytes = 1 << 20, MaxCompressionRatio = 1e9 } };
        Assert.Contains("zip bomb", Assert.Throws<DatasetFileException>(() => DatasetReader.Read(zip, "bomb.zip", small)).Message);
    }

    [Fact]
    public void RejectsHugeDimensionHeaderBeforeDecoding()
    {
        // a valid 1×1 PNG whose IHDR claims 5000×5000 (stb itself refuses headers above 2^30 bytes, so stay below that) (CRC not fixed: the header check must fire first)
        var png = TestData.Png(1, 1);
        png[16] = 0; png[17] = 0; png[18] = 0x13; png[19] = 0x88;
        png[20] = 0; png[21] = 0; png[22] = 0x13; png[23] = 0x88;
        var zip = TestData.Zip([("a/0.png", TestData.Png(4, 4)), ("a/1.png", png)]);
        var ex = Assert.Throws<DatasetFileException>(() => DatasetReader.Read(zip, "huge.zip"));
        Assert.Contains("5000×5000 pixels; the limit is 1024", ex.Message);
    }

    [Fact]
    public void RejectsLabelsBeyondModelClasses()
    {
        var zip = TestData.Zip([("a/0.png", TestData.Png(4, 4)), ("b/0.png", TestData.Png(4, 4)), ("c/0.png", TestData.Png(4, 4))]);
        Assert.Contains("3 class folders but the model has 2",
            Assert.Throws<DatasetFileException>(() => DatasetReader.Read(zip, "c.zip", new DatasetReadOptions { NumClasses = 2 })).Message);
    }
}
