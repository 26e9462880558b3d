using static TorchSharp.torch;

namespace WebDefense.Core.Data;

/// <summary>
/// CIFAR-10 binary batches (<c>data_batch_1.bin</c> … <c>test_batch.bin</c>): records of 1 label byte
/// (0–9) followed by 3,072 pixel bytes (1,024 red, 1,024 green, 1,024 blue, each 32×32 row-major).
/// Several batches are concatenated; a zip of <c>*.bin</c> files is read in ordinal name order.
/// </summary>
public static class Cifar10BinaryReader
{
    public const int RecordSize = 1 + 3 * 32 * 32;
    public const int NumClasses = 10;

    public static ImageDataset Read(Stream stream, DatasetReadOptions? options = null, string name = "CIFAR-10 batch")
    {
        options ??= DatasetReadOptions.Default;
        return Read([(name, SafeArchive.ReadUpload(stream, options.Limits, name))], options);
    }

    public static ImageDataset ReadFiles(IEnumerable<string> paths, DatasetReadOptions? options = null)
    {
        options ??= DatasetReadOptions.Default;
        var batches = new List<(string, byte[])>();
        foreach (var p in paths)
        {
            using var s = File.OpenRead(p);
            batches.Add((Path.GetFileName(p), SafeArchive.ReadUpload(s, options.Limits, Path.GetFileName(p))));
        }

        return Read(batches, options);
    }

    /// <summary>A zip holding <c>*.bin</c> batches (folders allowed; other files rejected, except macOS junk).</summary>
    public static ImageDataset ReadZip(byte[] zipBytes, DatasetReadOptions? options = null, string name = "archive")
    {
        options ??= DatasetReadOptions.Default;
        using var zip = SafeArchive.OpenZip(zipBytes, options.Limits, name);
        long used = 0;
        var batches = new List<(string, byte[])>();
        foreach (var e in zip.Entries.Where(e => !e.FullName.EndsWith('/') && !ImageFolderZipReader.IsJunk(e.FullName)).OrderBy(e => e.FullName, StringComparer.Ordinal))
        {
            if (!e.FullName.EndsWith(".bin", StringComparison.OrdinalIgnoreCase))
            {
                throw new DatasetFileException($"{name}: entry '{e.FullName}' is not a CIFAR-10 .bin batch");
            }

            batches.Add((e.FullName, SafeArchive.ReadEntry(e, options.Limits, ref used, name)));
        }

        return Read(batches, options);
    }

    public static ImageDataset Read(IReadOnlyList<(string Name, byte[] Data)> batches, DatasetReadOptions? options = null)
    {
        options ??= DatasetReadOptions.Default;
        if (batches.Count == 0)
        {
            throw new DatasetFileException("no CIFAR-10 batch files were given");
        }

        long total = 0;
        foreach (var (name, data) in batches)
        {
            if (data.Length == 0 || data.Length % RecordSize != 0)
            {
                throw new DatasetFileException(
                    $"{name} is {data.Length} bytes, not a whole number of {RecordSize}-byte CIFAR-10 records (1 label byte + 3,072 pixels); truncated or not a CIFAR-10 batch");
            }

            total += data.Length / RecordSize;
        }

        options.Limits.CheckSampleCount(total, "CIFAR-10 data");
        options.Limits.CheckTotalBytes(total * (RecordSize - 1), "CIFAR-10 data");
        var pixels = new byte[total * (RecordSize - 1)];
        var labels = new byte[total];
        long k = 0;
        foreach (var (name, data) in batches)
        {
            for (int r = 0; r < data.Length / RecordSize; r++, k++)
            {
                byte label = data[r * RecordSize];
                if (label >= NumClasses)
                {
                    throw new DatasetFileException($"{name}: label {label} at record {r} is outside 0..9; not a CIFAR-10 batch (CIFAR-100 has 2 label bytes)");
                }

                labels[k] = label;
                Buffer.BlockCopy(data, r * RecordSize + 1, pixels, (int)(k * (RecordSize - 1)), RecordSize - 1);
            }
        }

        using var scope = NewDisposeScope();
        var data2 = new ImageDataset(tensor(pixels, [total, 3, 32, 32], ScalarType.Byte), tensor(labels, [total], ScalarType.Byte).to_type(ScalarType.Int64));
        try
        {
            if (options.NumClasses is { } nc)
            {
                LabelCheck.EnsureInRange(data2, nc, "CIFAR-10 data");
            }

            return data2;
        }
        catch
        {
            data2.Dispose();
            throw;
        }
    }
}
