using WebDefense.Core.Data;

namespace WebDefense.Core.Tests.Data;

public class Cifar10BinaryReaderTests
{
    private static byte[] Batch(params byte[] labels)
    {
        var b = new byte[labels.Length * Cifar10BinaryReader.RecordSize];
        for (int r = 0; r < labels.Length; r++)
        {
            b[r * Cifar10BinaryReader.RecordSize] = labels[r];
            for (int p = 0; p < 3072; p++)
            {
                b[r * Cifar10BinaryReader.RecordSize + 1 + p] = (byte)((p + r * 17) % 251);
            }
        }

        return b;
    }

    [Fact]
    public void ReadsRecordsAsRgbPlanes()
    {
        using var data = Cifar10BinaryReader.Read(new MemoryStream(Batch(3, 9, 0)));
        Assert.Equal([3L, 3, 32, 32], data.Images.shape);
        Assert.Equal([3L, 9, 0], data.Labels.data<long>().ToArray());
        // record 1, green plane (offset 1024), row 2, column 5 → pixel index 1024 + 2*32 + 5
        Assert.Equal((byte)((1024 + 69 + 17) % 251), data.Images[1, 1, 2, 5].item<byte>());
    }

    [Fact]
    public void ZipOfBatchesAndDispatch()
    {
        var zip = TestData.Zip([("cifar-10-batches-bin/data_batch_2.bin", Batch(2)), ("cifar-10-batches-bin/data_batch_1.bin", Batch(1, 1))]);
        using var data = DatasetReader.Read(zip, "batches.zip");
        Assert.Equal([1L, 1, 2], data.Data.Labels.data<long>().ToArray());
        using var single = DatasetReader.Read(Batch(4), "test_batch.bin");
        Assert.Equal(1, single.Data.Count);
    }

    [Fact]
    public void RejectsTruncatedAndBadLabels()
    {
        var b = Batch(1, 2);
        var ex = Assert.Throws<DatasetFileException>(() => Cifar10BinaryReader.Read(new MemoryStream(b[..^10])));
        Assert.Contains("not a whole number of 3073-byte", ex.Message);
        Assert.Contains("label 10 at record 1", Assert.Throws<DatasetFileException>(() => Cifar10BinaryReader.Read(new MemoryStream(Batch(1, 10)))).Message);
        Assert.Contains("label 7 at sample 0 is outside 0..4",
            Assert.Throws<DatasetFileException>(() => Cifar10BinaryReader.Read(new MemoryStream(Batch(7)), new DatasetReadOptions { NumClasses = 5 })).Message);
    }
}
