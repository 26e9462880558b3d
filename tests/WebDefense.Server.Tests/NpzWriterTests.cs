using WebDefense.Core.Data;
using static TorchSharp.torch;

namespace WebDefense.Server.Tests;

public sealed class NpzWriterTests
{
    [Fact]
    public void A_written_npz_reads_back_identically()
    {
        using var images = randint(0, 256, [7, 3, 5, 4], dtype: ScalarType.Byte);
        using var labels = tensor(new long[] { 0, 1, 2, 9, 3, 3, 1 });
        using var data = new ImageDataset(images, labels);
        var path = Path.Combine(Path.GetTempPath(), $"rt-{Guid.NewGuid():N}.npz");
        try
        {
            NpzWriter.Write(data, path);
            using var back = DatasetReader.Read(path);
            Assert.Equal([7, 3, 5, 4], back.Data.Images.shape);
            Assert.True(back.Data.Images.eq(data.Images).all().item<bool>());
            Assert.True(back.Data.Labels.eq(data.Labels).all().item<bool>());
        }
        finally
        {
            File.Delete(path);
        }
    }
}
