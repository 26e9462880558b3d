using System.IO.Compression;
using WebDefense.Core.Data;

namespace WebDefense.Core.Tests.Data;

public class IdxReaderTests
{
    [Fact]
    public void FashionMnistTestSet()
    {
        using var data = TestData.FashionMnistTest();
        Assert.Equal([10000L, 1, 28, 28], data.Images.shape);
        Assert.All(TestData.LabelCounts(data, 10), c => Assert.Equal(1000, c));

        using var gz = new GZipStream(File.OpenRead(Path.Combine(TestData.FashionMnistDir, "t10k-labels-idx1-ubyte.gz")), CompressionMode.Decompress);
        var head = new byte[8 + 5];
        gz.ReadExactly(head);
        for (int k = 0; k < 5; k++)
        {
            Assert.Equal(head[8 + k], data.Labels[k].item<long>());
        }

        using var gzi = new GZipStream(File.OpenRead(Path.Combine(TestData.FashionMnistDir, "t10k-images-idx3-ubyte.gz")), CompressionMode.Decompress);
        var img = new byte[16 + 784];
        gzi.ReadExactly(img);
        Assert.Equal(img[16..], data.Images[0].reshape(784).data<byte>().ToArray());
    }

    [Fact]
    public void MnistTestSetFromShared()
    {
        using var data = IdxReader.Read(TestData.SharedData("mnist-test", "t10k-images-idx3-ubyte.gz"), TestData.SharedData("mnist-test", "t10k-labels-idx1-ubyte.gz"));
        Assert.Equal([10000L, 1, 28, 28], data.Images.shape);
        Assert.Equal([980L, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009], TestData.LabelCounts(data, 10));
    }

    private static byte[] Images(int n, int rows, int cols, int dataBytes) =>
        [0, 0, 8, 3, .. BE(n), .. BE(rows), .. BE(cols), .. new byte[dataBytes]];

    private static byte[] Labels(int n, int dataBytes) => [0, 0, 8, 1, .. BE(n), .. new byte[dataBytes]];

    private static byte[] BE(int v) => [(byte)(v >> 24), (byte)(v >> 16), (byte)(v >> 8), (byte)v];

    [Fact]
    public void RejectsBadFiles()
    {
        using (var ok = IdxReader.Read(Images(2, 3, 3, 18), Labels(2, 2)))
        {
            Assert.Equal(2, ok.Count);
        }

        Assert.Contains("truncated", Assert.Throws<DatasetFileException>(() => IdxReader.Read(Images(2, 3, 3, 17), Labels(2, 2))).Message);
        Assert.Contains("truncated", Assert.Throws<DatasetFileException>(() => IdxReader.Read(Images(2, 3, 3, 18), Labels(2, 1))).Message);
        Assert.Contains("2 images but", Assert.Throws<DatasetFileException>(() => IdxReader.Read(Images(2, 3, 3, 18), Labels(3, 3))).Message);
        Assert.Contains("1024 pixels a side", Assert.Throws<DatasetFileException>(() => IdxReader.Read(Images(1, 100000, 100000, 0), Labels(1, 1))).Message);
        Assert.Contains("magic", Assert.Throws<DatasetFileException>(() => IdxReader.Read(Labels(2, 2), Labels(2, 2))).Message);
        byte[] labels = Labels(2, 2);
        labels[9] = 12;
        Assert.Contains("label 12 at sample 1 is outside 0..9",
            Assert.Throws<DatasetFileException>(() => IdxReader.Read(Images(2, 3, 3, 18), labels, new DatasetReadOptions { NumClasses = 10 })).Message);
    }
}
