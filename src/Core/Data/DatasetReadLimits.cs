namespace WebDefense.Core.Data;

/// <summary>
/// Upper bounds applied while reading an uploaded dataset, so that a hostile or accidental file cannot
/// exhaust memory or disk: upload size, decompressed size (zip/gzip bombs, also as a compression
/// ratio), archive entry count, image side and pixel count, samples and classes.
/// </summary>
public sealed record DatasetReadLimits
{
    /// <summary>Largest upload accepted, in bytes (default 1 GiB).</summary>
    public long MaxUploadBytes { get; init; } = 1L << 30;

    /// <summary>Largest total decompressed size of an archive or gzip stream, in bytes (default 1.5 GiB).</summary>
    public long MaxDecompressedBytes { get; init; } = 3L << 29;

    /// <summary>Largest decompressed/compressed ratio for an archive entry or gzip stream (default 200).</summary>
    public double MaxCompressionRatio { get; init; } = 200;

    /// <summary>Entries smaller than this (decompressed) are exempt from the ratio check (default 1 MiB).</summary>
    public long RatioCheckMinBytes { get; init; } = 1L << 20;

    /// <summary>Most entries (files and folders) in an archive (default 100,000).</summary>
    public int MaxArchiveEntries { get; init; } = 100_000;

    /// <summary>Largest image width or height (default 1024).</summary>
    public int MaxImageSide { get; init; } = 1024;

    /// <summary>Most pixels (width × height) in one image (default 1024 × 1024).</summary>
    public long MaxImagePixels { get; init; } = 1024L * 1024;

    /// <summary>Most samples in a dataset (default 1,000,000).</summary>
    public int MaxSamples { get; init; } = 1_000_000;

    /// <summary>Most classes (largest label + 1, or class folders) (default 1,000).</summary>
    public int MaxClasses { get; init; } = 1_000;

    public static DatasetReadLimits Default { get; } = new();

    internal void CheckImageSize(long height, long width, string what)
    {
        if (height < 1 || width < 1)
        {
            throw new DatasetFileException($"{what} has an empty image size {width}×{height}");
        }

        if (height > MaxImageSide || width > MaxImageSide || height * width > MaxImagePixels)
        {
            throw new DatasetFileException(
                $"{what} has images of {width}×{height} pixels; the limit is {MaxImageSide} pixels a side and {MaxImagePixels} pixels in all");
        }
    }

    internal void CheckSampleCount(long count, string what)
    {
        if (count < 1)
        {
            throw new DatasetFileException($"{what} holds no samples");
        }

        if (count > MaxSamples)
        {
            throw new DatasetFileException($"{what} holds {count} samples; the limit is {MaxSamples}");
        }
    }

    internal void CheckTotalBytes(long bytes, string what)
    {
        if (bytes > MaxDecompressedBytes)
        {
            throw new DatasetFileException($"{what} would need {Bytes(bytes)} of pixels; the limit is {Bytes(MaxDecompressedBytes)}");
        }
    }

    internal static string Bytes(long n) => n >= 1L << 20 ? $"{n / (double)(1L << 20):0.#} MiB" : n >= 1024 ? $"{n / 1024.0:0.#} KiB" : $"{n} bytes";
}
