using WebDefense.Core.Data;

namespace WebDefense.Core.Tests.Data;

public class NumpyReaderTests
{
    private static ImageDataset Read(string fixture, DatasetReadOptions? o = null) =>
        NumpyReader.Read(File.ReadAllBytes(TestData.Fixture(fixture)), fixture, o);

    private static int Pattern(int n, int c, int h, int w) => (n * 31 + h * 7 + w * 3 + c * 50) % 256;

    [Theory]
    [InlineData("uint8_nhwc.npz")]
    [InlineData("float_nchw.npz")]
    [InlineData("fortran_bigendian.npz")]
    public void ReadsColourLayouts(string fixture)
    {
        using var data = Read(fixture);
        Assert.Equal([4L, 3, 8, 6], data.Images.shape);
        foreach (var (n, c, h, w) in new[] { (0, 0, 0, 0), (1, 2, 3, 4), (3, 1, 7, 5), (2, 2, 0, 5) })
        {
            Assert.Equal(Pattern(n, c, h, w), data.Images[n, c, h, w].item<byte>());
        }

        long[] expected = fixture == "float_nchw.npz" ? [3, 1, 4, 1] : [0, 1, 2, 3];
        Assert.Equal(expected, data.Labels.data<long>().ToArray());
    }

    [Fact]
    public void ReadsGreyAliases()
    {
        using var data = Read("grey_nhw.npz");
        Assert.Equal([5L, 1, 6, 6], data.Images.shape);
        Assert.Equal((4 * 40 + 5 * 10 + 3) % 256, data.Images[4, 0, 5, 3].item<byte>());
        Assert.Equal([0L, 1, 2, 3, 9], data.Labels.data<long>().ToArray());
    }

    [Theory]
    [InlineData("bad_object.npz", "allow_pickle")]
    [InlineData("bad_truncated.npz", "truncated")]
    [InlineData("bad_negative.npz", "already normalised")]
    [InlineData("only_x.npy", "cannot hold labels")]
    public void RejectsBadFiles(string fixture, string message)
    {
        var ex = Assert.Throws<DatasetFileException>(() => DatasetReader.Read(TestData.Fixture(fixture)));
        Assert.Contains(message, ex.Message);
    }

    [Fact]
    public void LabelsOutOfRange()
    {
        var ex = Assert.Throws<DatasetFileException>(() => Read("labels_out_of_range.npz", new DatasetReadOptions { NumClasses = 10 }));
        Assert.Contains("label 12 at sample 2 is outside 0..9", ex.Message);
        using var ok = Read("labels_out_of_range.npz");
        Assert.Throws<DatasetFileException>(() => LabelCheck.EnsureInRange(ok, 10));
    }

    [Fact]
    public void ExplicitLayoutOverridesHeuristic()
    {
        // read as channels-first, the 4×8×6×3 array has 8 channels: rejected with the shape in the message
        var ex = Assert.Throws<DatasetFileException>(() => Read("uint8_nhwc.npz", new DatasetReadOptions { ChannelsLast = false }));
        Assert.Contains("8 channels", ex.Message);
    }
}
