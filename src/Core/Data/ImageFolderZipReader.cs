using System.IO.Compression;
using static TorchSharp.torch;

namespace WebDefense.Core.Data;

/// <summary>
/// A zip of class folders in torchvision ImageFolder layout: <c>cat/1.png</c>, <c>dog/2.jpg</c>, or the
/// same below one top-level folder (<c>test/cat/1.png</c>). Class index = position of the folder name in
/// ordinal (Python <c>sorted</c>) order; samples are ordered by class, then by file path. PNG and JPEG
/// (.png, .jpg, .jpeg) only; macOS/Windows junk (<c>__MACOSX/</c>, <c>.DS_Store</c>, <c>._*</c>,
/// <c>Thumbs.db</c>, <c>desktop.ini</c>) is ignored; any other file, a deeper or shallower path, traversal,
/// links and oversize content are rejected.
/// </summary>
public static class ImageFolderZipReader
{
    private static readonly string[] Extensions = [".png", ".jpg", ".jpeg"];

    public static LabelledDataset Read(Stream stream, string fileName, DatasetReadOptions? options = null)
    {
        options ??= DatasetReadOptions.Default;
        return Read(SafeArchive.ReadUpload(stream, options.Limits, fileName), fileName, options);
    }

    public static LabelledDataset Read(byte[] zipBytes, string fileName, DatasetReadOptions? options = null)
    {
        options ??= DatasetReadOptions.Default;
        var limits = options.Limits;
        int channels = options.Channels;
        if (channels is not (1 or 3))
        {
            throw new ArgumentException($"channels must be 1 or 3, got {channels}");
        }

        if (options.TargetSize is { } ts)
        {
            limits.CheckImageSize(ts.Height, ts.Width, "the target size");
        }

        using var zip = SafeArchive.OpenZip(zipBytes, limits, fileName);
        var files = zip.Entries.Where(e => !e.FullName.EndsWith('/') && !IsJunk(e.FullName)).ToList();
        if (files.Count == 0)
        {
            throw new DatasetFileException($"{fileName} holds no images");
        }

        var parts = files.Select(e => e.FullName.Split('/')).ToList();
        int depth = parts.Max(p => p.Length);
        bool oneTop = depth == 3 && parts.All(p => p.Length == 3) && parts.Select(p => p[0]).Distinct().Count() == 1;
        if (!(depth == 2 && parts.All(p => p.Length == 2)) && !oneTop)
        {
            var odd = files[parts.FindIndex(p => p.Length != 2)].FullName;
            throw new DatasetFileException(
                $"{fileName} is not laid out as class folders: '{odd}' (expected class/image.png, or one top folder holding class folders)");
        }

        int ci = oneTop ? 1 : 0;
        foreach (var e in files)
        {
            if (!Extensions.Any(x => e.FullName.EndsWith(x, StringComparison.OrdinalIgnoreCase)))
            {
                throw new DatasetFileException($"{fileName}: '{e.FullName}' is not a .png/.jpg/.jpeg image");
            }
        }

        var classNames = parts.Select(p => p[ci]).Distinct().OrderBy(s => s, StringComparer.Ordinal).ToArray();
        if (classNames.Length > limits.MaxClasses)
        {
            throw new DatasetFileException($"{fileName} has {classNames.Length} class folders; the limit is {limits.MaxClasses}");
        }

        var classIndex = classNames.Select((n, i) => (n, i)).ToDictionary(t => t.n, t => t.i, StringComparer.Ordinal);
        var ordered = files.Select((e, k) => (Entry: e, Label: classIndex[parts[k][ci]]))
            .OrderBy(t => t.Label).ThenBy(t => t.Entry.FullName, StringComparer.Ordinal).ToList();
        limits.CheckSampleCount(ordered.Count, fileName);

        int h = 0, w = 0;
        byte[]? pixels = null;
        var labels = new long[ordered.Count];
        long used = 0;
        for (int k = 0; k < ordered.Count; k++)
        {
            var (entry, label) = ordered[k];
            string name = $"{fileName}: '{entry.FullName}'";
            var bytes = SafeArchive.ReadEntry(entry, limits, ref used, fileName);
            var (hwc, ih, iw) = ImageCodec.Decode(bytes, channels, limits, name);
            byte[] chw = ToChw(hwc, ih, iw, channels);
            if (options.TargetSize is { } target)
            {
                if (ih != target.Height || iw != target.Width)
                {
                    using var scope = NewDisposeScope();
                    chw = ImageCodec.Resize(tensor(chw, [channels, ih, iw], ScalarType.Byte), target.Height, target.Width).data<byte>().ToArray();
                }

                (ih, iw) = target;
            }

            if (pixels is null)
            {
                (h, w) = (ih, iw);
                long total = (long)ordered.Count * channels * h * w;
                limits.CheckTotalBytes(total, fileName);
                pixels = new byte[total];
            }
            else if (ih != h || iw != w)
            {
                throw new DatasetFileException(
                    $"{name} is {iw}×{ih} but '{ordered[0].Entry.FullName}' is {w}×{h}; all images must have the same size (or choose a target size)");
            }

            Buffer.BlockCopy(chw, 0, pixels, k * chw.Length, chw.Length);
            labels[k] = label;
        }

        using var scope2 = NewDisposeScope();
        var data = new ImageDataset(tensor(pixels!, [ordered.Count, channels, h, w], ScalarType.Byte), tensor(labels, [ordered.Count], ScalarType.Int64));
        try
        {
            if (options.NumClasses is { } nc)
            {
                if (classNames.Length > nc)
                {
                    throw new DatasetFileException($"{fileName} has {classNames.Length} class folders but the model has {nc} classes");
                }

                LabelCheck.EnsureInRange(data, nc, fileName);
            }

            return new LabelledDataset(data, classNames);
        }
        catch
        {
            data.Dispose();
            throw;
        }
    }

    /// <summary>Archive entries ignored everywhere: macOS resource forks and Finder/Explorer metadata.</summary>
    internal static bool IsJunk(string path)
    {
        var segs = path.TrimEnd('/').Split('/');
        string last = segs[^1];
        return segs.Contains("__MACOSX") || last == ".DS_Store" || last.StartsWith("._", StringComparison.Ordinal)
            || last.Equals("Thumbs.db", StringComparison.OrdinalIgnoreCase) || last.Equals("desktop.ini", StringComparison.OrdinalIgnoreCase);
    }

    private static byte[] ToChw(byte[] hwc, int h, int w, int c)
    {
        if (c == 1)
        {
            return hwc;
        }

        var chw = new byte[hwc.Length];
        int plane = h * w;
        for (int p = 0; p < plane; p++)
        {
            for (int ch = 0; ch < c; ch++)
            {
                chw[ch * plane + p] = hwc[p * c + ch];
            }
        }

        return chw;
    }
}
