using System.Formats.Tar;
using System.IO.Compression;

namespace WebDefense.Core.Data;

/// <summary>
/// Bounded reading of uploads, gzip streams and zip archives: every read counts the bytes it really
/// produces (declared sizes can lie), entry names are checked for traversal, and symlinks are refused.
/// </summary>
internal static class SafeArchive
{
    public static bool IsGzip(ReadOnlySpan<byte> b) => b.Length >= 2 && b[0] == 0x1f && b[1] == 0x8b;

    public static bool IsZip(ReadOnlySpan<byte> b) => b.Length >= 4 && b[0] == (byte)'P' && b[1] == (byte)'K' && (b[2] is 3 or 5) && (b[3] is 4 or 6);

    /// <summary>A POSIX (ustar or GNU) tar archive: "ustar" at byte 257 of the first header.</summary>
    public static bool IsTar(ReadOnlySpan<byte> b) => b.Length >= 512 && b.Slice(257, 5).SequenceEqual("ustar"u8);

    /// <summary>
    /// Repacks a tar archive's regular files into an in-memory zip (stored, not compressed) so the zip readers apply
    /// unchanged. Directories and pax/GNU metadata entries are skipped; links, devices and FIFOs are refused; names
    /// are checked as zip entry names are, and entry count and total size are bounded before anything is copied.
    /// </summary>
    public static byte[] TarToZip(byte[] tar, DatasetReadLimits limits, string name)
    {
        using var output = new MemoryStream();
        try
        {
            using (var zip = new ZipArchive(output, ZipArchiveMode.Create, leaveOpen: true))
            using (var reader = new TarReader(new MemoryStream(tar, writable: false)))
            {
                var count = 0;
                long total = 0;
                while (reader.GetNextEntry() is { } entry)
                {
                    switch (entry.EntryType)
                    {
                        case TarEntryType.Directory or TarEntryType.GlobalExtendedAttributes or TarEntryType.ExtendedAttributes
                            or TarEntryType.LongPath or TarEntryType.LongLink:
                            continue;
                        case TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile:
                            break;
                        default:
                            throw new DatasetFileException($"{name}: entry '{Printable(entry.Name)}' is a {entry.EntryType}; only regular files and folders are accepted");
                    }

                    var entryName = entry.Name.StartsWith("./", StringComparison.Ordinal) ? entry.Name[2..] : entry.Name;
                    CheckEntryName(entryName, name);
                    if (++count > limits.MaxArchiveEntries)
                    {
                        throw new DatasetFileException($"{name} holds more than {limits.MaxArchiveEntries} files; the limit is {limits.MaxArchiveEntries}");
                    }

                    total += entry.Length;
                    if (total > limits.MaxDecompressedBytes)
                    {
                        throw new DatasetFileException($"{name} holds more than {DatasetReadLimits.Bytes(limits.MaxDecompressedBytes)} of files; the limit is {DatasetReadLimits.Bytes(limits.MaxDecompressedBytes)}");
                    }

                    var target = zip.CreateEntry(entryName, CompressionLevel.NoCompression);
                    using var to = target.Open();
                    entry.DataStream?.CopyTo(to);
                }
            }

            return output.ToArray();
        }
        catch (Exception e) when (e is InvalidDataException or FormatException or EndOfStreamException)
        {
            throw new DatasetFileException($"{name} is not a valid tar archive ({e.Message})", e);
        }
    }

    /// <summary>Reads a whole stream, throwing once more than <paramref name="maxBytes"/> have been produced.</summary>
    public static byte[] ReadAll(Stream stream, long maxBytes, Func<string> tooLarge)
    {
        if (stream.CanSeek && stream.Length - stream.Position > maxBytes)
        {
            throw new DatasetFileException(tooLarge());
        }

        using var ms = stream.CanSeek ? new MemoryStream((int)Math.Min(stream.Length - stream.Position, int.MaxValue - 64)) : new MemoryStream();
        var buffer = new byte[1 << 16];
        long total = 0;
        int n;
        while ((n = stream.Read(buffer, 0, buffer.Length)) > 0)
        {
            total += n;
            if (total > maxBytes || total > Array.MaxLength)
            {
                throw new DatasetFileException(tooLarge());
            }

            ms.Write(buffer, 0, n);
        }

        return ms.Length == ms.Capacity ? ms.GetBuffer() : ms.ToArray();
    }

    /// <summary>Reads an upload, bounded by <see cref="DatasetReadLimits.MaxUploadBytes"/>.</summary>
    public static byte[] ReadUpload(Stream stream, DatasetReadLimits limits, string name) =>
        ReadAll(stream, limits.MaxUploadBytes, () => $"{name} is larger than the upload limit of {DatasetReadLimits.Bytes(limits.MaxUploadBytes)}");

    /// <summary>The bytes themselves, or their decompressed content when they start with the gzip magic 1f 8b.</summary>
    public static byte[] MaybeGunzip(byte[] data, DatasetReadLimits limits, string name)
    {
        if (!IsGzip(data))
        {
            return data;
        }

        long cap = DecompressionCap(data.Length, limits.MaxDecompressedBytes, limits);
        try
        {
            using var gz = new GZipStream(new MemoryStream(data, writable: false), CompressionMode.Decompress);
            return ReadAll(gz, cap, () => BombMessage(name, data.Length, cap, limits));
        }
        catch (InvalidDataException e)
        {
            throw new DatasetFileException($"{name} starts like gzip but is not a valid gzip stream ({e.Message})", e);
        }
    }

    private static long DecompressionCap(long compressed, long budget, DatasetReadLimits limits) =>
        Math.Min(budget, Math.Max(limits.RatioCheckMinBytes, (long)Math.Min(long.MaxValue / 2, compressed * limits.MaxCompressionRatio)));

    private static string BombMessage(string name, long compressed, long cap, DatasetReadLimits limits) =>
        $"{name} decompresses to more than {DatasetReadLimits.Bytes(cap)} from {DatasetReadLimits.Bytes(compressed)} " +
        $"(limits: {DatasetReadLimits.Bytes(limits.MaxDecompressedBytes)} in all, compression ratio {limits.MaxCompressionRatio}); refusing a possible zip bomb";

    /// <summary>Opens a zip held in memory and checks its entries (count, names, symlinks, declared sizes and ratios).</summary>
    public static ZipArchive OpenZip(byte[] data, DatasetReadLimits limits, string name)
    {
        ZipArchive zip;
        try
        {
            zip = new ZipArchive(new MemoryStream(data, writable: false), ZipArchiveMode.Read);
        }
        catch (InvalidDataException e)
        {
            throw new DatasetFileException($"{name} is not a valid zip archive ({e.Message})", e);
        }

        try
        {
            var entries = zip.Entries;
            if (entries.Count > limits.MaxArchiveEntries)
            {
                throw new DatasetFileException($"{name} holds {entries.Count} entries; the limit is {limits.MaxArchiveEntries}");
            }

            long declared = 0;
            foreach (var e in entries)
            {
                CheckEntryName(e.FullName, name);
                if (((e.ExternalAttributes >> 16) & 0xF000) == 0xA000)
                {
                    throw new DatasetFileException($"{name}: entry '{e.FullName}' is a symbolic link; links are not accepted");
                }

                declared += e.Length;
                if (declared > limits.MaxDecompressedBytes)
                {
                    throw new DatasetFileException(
                        $"{name} declares more than {DatasetReadLimits.Bytes(limits.MaxDecompressedBytes)} of uncompressed content; refusing a possible zip bomb");
                }

                if (e.Length > limits.RatioCheckMinBytes && e.Length > e.CompressedLength * limits.MaxCompressionRatio)
                {
                    throw new DatasetFileException(
                        $"{name}: entry '{e.FullName}' expands {DatasetReadLimits.Bytes(e.CompressedLength)} to {DatasetReadLimits.Bytes(e.Length)} " +
                        $"(ratio above {limits.MaxCompressionRatio}); refusing a possible zip bomb");
                }
            }

            return zip;
        }
        catch
        {
            zip.Dispose();
            throw;
        }
    }

    /// <summary>Rejects absolute paths, backslashes, drive letters, '..' segments and control characters.</summary>
    public static void CheckEntryName(string entry, string archive)
    {
        string? why =
            entry.Length == 0 ? "an empty name" :
            entry.Contains('\\') ? "a backslash in its name" :
            entry.StartsWith('/') ? "an absolute path" :
            entry.Length >= 2 && entry[1] == ':' ? "a drive letter" :
            entry.Split('/').Any(s => s == "..") ? "a '..' path segment (path traversal)" :
            entry.Any(char.IsControl) ? "control characters in its name" : null;
        if (why is not null)
        {
            throw new DatasetFileException($"{archive}: entry '{Printable(entry)}' has {why}; not accepted");
        }
    }

    /// <summary>Reads one entry, counting real decompressed bytes against the remaining budget and the ratio limit.</summary>
    public static byte[] ReadEntry(ZipArchiveEntry entry, DatasetReadLimits limits, ref long budgetUsed, string archive)
    {
        long cap = DecompressionCap(entry.CompressedLength, limits.MaxDecompressedBytes - budgetUsed, limits);
        byte[] bytes;
        try
        {
            using var s = entry.Open();
            bytes = ReadAll(s, cap, () => BombMessage($"{archive}: entry '{entry.FullName}'", entry.CompressedLength, cap, limits));
        }
        catch (InvalidDataException e)
        {
            throw new DatasetFileException($"{archive}: entry '{entry.FullName}' is corrupt ({e.Message})", e);
        }

        budgetUsed += bytes.Length;
        return bytes;
    }

    private static string Printable(string s) => new(s.Select(c => char.IsControl(c) ? '?' : c).Take(200).ToArray());
}
