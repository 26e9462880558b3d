using System.Buffers.Binary;
using static TorchSharp.torch;

namespace WebDefense.Core.Data;

/// <summary>
/// MNIST-style IDX files: images (magic 0x00000803: uint8, 3 dimensions N×rows×cols, big-endian sizes)
/// and labels (magic 0x00000801: uint8, N). Either file may be gzipped (detected by the 1f 8b magic).
/// </summary>
public static class IdxReader
{
    public const int ImagesMagic = 0x00000803;
    public const int LabelsMagic = 0x00000801;

    public static ImageDataset Read(string imagesPath, string labelsPath, DatasetReadOptions? options = null)
    {
        options ??= DatasetReadOptions.Default;
        using var images = File.OpenRead(imagesPath);
        using var labels = File.OpenRead(labelsPath);
        return Read(images, labels, options, Path.GetFileName(imagesPath), Path.GetFileName(labelsPath));
    }

    public static ImageDataset Read(Stream images, Stream labels, DatasetReadOptions? options = null, string imagesName = "images file", string labelsName = "labels file")
    {
        options ??= DatasetReadOptions.Default;
        var limits = options.Limits;
        return Read(SafeArchive.ReadUpload(images, limits, imagesName), SafeArchive.ReadUpload(labels, limits, labelsName), options, imagesName, labelsName);
    }

    /// <summary>From the raw (possibly gzipped) bytes of both files.</summary>
    public static ImageDataset Read(byte[] images, byte[] labels, DatasetReadOptions? options = null, string imagesName = "images file", string labelsName = "labels file")
    {
        options ??= DatasetReadOptions.Default;
        var limits = options.Limits;
        images = SafeArchive.MaybeGunzip(images, limits, imagesName);
        labels = SafeArchive.MaybeGunzip(labels, limits, labelsName);

        CheckMagic(images, ImagesMagic, imagesName, "images");
        CheckMagic(labels, LabelsMagic, labelsName, "labels");
        if (images.Length < 16 || labels.Length < 8)
        {
            throw new DatasetFileException($"{(images.Length < 16 ? imagesName : labelsName)} is truncated inside its header");
        }

        long n = ReadDim(images, 4, imagesName), rows = ReadDim(images, 8, imagesName), cols = ReadDim(images, 12, imagesName);
        long nLabels = ReadDim(labels, 4, labelsName);
        limits.CheckSampleCount(n, imagesName);
        limits.CheckImageSize(rows, cols, imagesName);
        if (n != nLabels)
        {
            throw new DatasetFileException($"{imagesName} holds {n} images but {labelsName} holds {nLabels} labels");
        }

        long pixels = n * rows * cols;
        limits.CheckTotalBytes(pixels, imagesName);
        CheckLength(images.Length - 16L, pixels, imagesName);
        CheckLength(labels.Length - 8L, n, labelsName);

        using var scope = NewDisposeScope();
        var x = tensor(images.AsSpan(16, (int)pixels).ToArray(), [n, 1, rows, cols], ScalarType.Byte);
        var y = tensor(labels.AsSpan(8, (int)n).ToArray(), [n], ScalarType.Byte).to_type(ScalarType.Int64);
        var data = new ImageDataset(x, y);
        try
        {
            LabelCheck.Validate(data, options, labelsName);
            return data;
        }
        catch
        {
            data.Dispose();
            throw;
        }
    }

    private static void CheckMagic(byte[] b, int expected, string name, string what)
    {
        if (b.Length < 4)
        {
            throw new DatasetFileException($"{name} is too short to be an IDX {what} file ({b.Length} bytes)");
        }

        int magic = BinaryPrimitives.ReadInt32BigEndian(b);
        if (magic != expected)
        {
            throw new DatasetFileException($"{name} is not an IDX {what} file: expected magic 0x{expected:X8}, found 0x{magic:X8}");
        }
    }

    private static long ReadDim(byte[] b, int offset, string name)
    {
        int d = BinaryPrimitives.ReadInt32BigEndian(b.AsSpan(offset));
        if (d < 0)
        {
            throw new DatasetFileException($"{name} declares a negative size {d}");
        }

        return d;
    }

    private static void CheckLength(long actual, long expected, string name)
    {
        if (actual < expected)
        {
            throw new DatasetFileException($"{name} is truncated: its header promises {expected} data bytes, found {actual}");
        }

        if (actual > expected)
        {
            throw new DatasetFileException($"{name} has {actual - expected} unexpected bytes after the {expected} data bytes its header promises");
        }
    }
}
