using System.Formats.Tar;
using System.IO.Compression;
using WebDefense.Core.Data;

namespace WebDefense.Core.Tests.Data;

/// <summary>.tar and .tar.gz archives of class folders read like zips, with the same checks.</summary>
public sealed class TarArchiveTests
{
    private static byte[] Tar(IEnumerable<(string Name, byte[] Data)> files, Action<TarWriter>? more = null, TarEntryFormat format = TarEntryFormat.Pax)
    {
        var ms = new MemoryStream();
        using (var writer = new TarWriter(ms, format, leaveOpen: true))
        {
            writer.WriteEntry(format == TarEntryFormat.Pax ? new PaxTarEntry(TarEntryType.Directory, "set/") : new GnuTarEntry(TarEntryType.Directory, "set/"));
            foreach (var (name, data) in files)
            {
                TarEntry entry = format == TarEntryFormat.Pax ? new PaxTarEntry(TarEntryType.RegularFile, name) : new GnuTarEntry(TarEntryType.RegularFile, name);
                entry.DataStream = new MemoryStream(data);
                writer.WriteEntry(entry);
            }

            more?.Invoke(writer);
        }

        return ms.ToArray();
    }

    private static byte[] Gzip(byte[] data)
    {
        var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Fastest, leaveOpen: true))
        {
            gz.Write(data);
        }

        return ms.ToArray();
    }

    private static readonly (string, byte[])[] Files =
    [
        ("set/dog/2.png", TestData.Png(4, 4, 200)), ("set/cat/1.png", TestData.Png(4, 4, 10)), ("set/cat/3.png", TestData.Png(4, 4, 20)),
        ("set/cat/._3.png", [1, 2]),
    ];

    [Theory]
    [InlineData(false, TarEntryFormat.Pax)]
    [InlineData(true, TarEntryFormat.Pax)]
    [InlineData(true, TarEntryFormat.Gnu)]
    public void Class_folders_in_a_tar_are_read_with_their_names(bool gzip, TarEntryFormat format)
    {
        var tar = Tar(Files, format: format);
        using var data = DatasetReader.Read(gzip ? Gzip(tar) : tar, gzip ? "set.tar.gz" : "set.tar");
        Assert.Equal(["cat", "dog"], data.ClassNames);
        Assert.Equal([0L, 0, 1], data.Data.Labels.data<long>().ToArray());
        Assert.Equal([3L, 3, 4, 4], data.Data.Images.shape);
        Assert.Equal(10, data.Data.Images[0, 0, 0, 0].item<byte>());
    }

    [Fact]
    public void Links_and_traversal_are_refused()
    {
        var link = Tar(Files, w => w.WriteEntry(new PaxTarEntry(TarEntryType.SymbolicLink, "set/cat/4.png") { LinkName = "/etc/passwd" }));
        Assert.Contains("is a SymbolicLink", Assert.Throws<DatasetFileException>(() => DatasetReader.Read(link, "l.tar").Dispose()).Message);
        var hard = Tar(Files, w => w.WriteEntry(new PaxTarEntry(TarEntryType.HardLink, "set/cat/5.png") { LinkName = "set/cat/1.png" }));
        Assert.Contains("is a HardLink", Assert.Throws<DatasetFileException>(() => DatasetReader.Read(Gzip(hard), "h.tgz").Dispose()).Message);
        var up = Tar([("set/cat/1.png", TestData.Png(4, 4)), ("set/../../evil.png", TestData.Png(4, 4))]);
        Assert.Contains("path traversal", Assert.Throws<DatasetFileException>(() => DatasetReader.Read(up, "t.tar").Dispose()).Message);
    }

    [Fact]
    public void Entry_count_and_size_limits_hold_for_tars()
    {
        var tar = Tar(Files);
        var few = new DatasetReadOptions { Limits = DatasetReadLimits.Default with { MaxArchiveEntries = 2 } };
        Assert.Contains("holds more than 2 files", Assert.Throws<DatasetFileException>(() => DatasetReader.Read(tar, "s.tar", few).Dispose()).Message);
        var small = new DatasetReadOptions { Limits = DatasetReadLimits.Default with { MaxDecompressedBytes = 100 } };
        Assert.Throws<DatasetFileException>(() => DatasetReader.Read(Gzip(tar), "s.tar.gz", small).Dispose());
    }

    [Fact]
    public void Shared_cifar10_jpeg_test_tarball_reads_as_published()
    {
        using var data = DatasetReader.Read(TestData.SharedData("cifar10-jpeg", "cifar10-jpeg-test.tar.gz"));
        Assert.Equal([10_000L, 3, 32, 32], data.Data.Images.shape);
        Assert.Equal(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"], data.ClassNames);
        Assert.All(TestData.LabelCounts(data.Data, 10), c => Assert.Equal(1000, c));
    }
}
