using static TorchSharp.torch;

namespace WebDefense.Core.Data;

/// <summary>
/// Numpy uploads. A <c>.npz</c> (zip of <c>.npy</c> arrays, as written by <c>np.savez</c> or
/// <c>np.savez_compressed</c>) must hold one image array and one label array, found by these names
/// (first match wins within each list; two different candidates present is an error):
/// images <see cref="ImageNames"/> = x, images, imgs, data, X, x_test, x_train, X_test, X_train;
/// labels <see cref="LabelNames"/> = y, labels, targets, label, Y, y_test, y_train, Y_test, Y_train.
/// A bare <c>.npy</c> holds only one array, so it is refused (labels are needed).
/// <para>Images: N×H×W (grey), N×C×H×W or N×H×W×C with C ∈ {1, 3}. The layout comes from
/// <see cref="DatasetReadOptions.ChannelsLast"/>, else is detected: last dimension in {1,3} and dimension 1
/// not → channels-last; dimension 1 in {1,3} and the last not → channels-first; otherwise ambiguous (error).
/// Values: uint8 as is; other integers must lie in 0–255; floats with maximum ≤ 1 are scaled by 255 and
/// rounded, floats in [0,255] are rounded; negative, NaN or larger values are refused (already-normalised data).</para>
/// <para>Labels: N (or N×1) integers ≥ 0, any integer dtype.</para>
/// </summary>
public static class NumpyReader
{
    public static readonly IReadOnlyList<string> ImageNames = ["x", "images", "imgs", "data", "X", "x_test", "x_train", "X_test", "X_train"];
    public static readonly IReadOnlyList<string> LabelNames = ["y", "labels", "targets", "label", "Y", "y_test", "y_train", "Y_test", "Y_train"];

    /// <summary>Optional per-sample ground truth of a poisoned training set (bool or 0/1 integers, N values).</summary>
    public static readonly IReadOnlyList<string> PoisonFlagNames = ["poisoned", "is_poisoned", "poison_flags"];

    /// <summary>
    /// The ground-truth poison flags of an <c>.npz</c> (an array named as in <see cref="PoisonFlagNames"/>), or null
    /// when the file is not an .npz or holds no such array. The images and labels are read by <see cref="Read(byte[], string, DatasetReadOptions?)"/>.
    /// </summary>
    /// <param name="imageCount">When given, the number of images the flags must match one to one.</param>
    /// <exception cref="DatasetFileException">The array is there but malformed (not N values of 0/1, several candidates, or not <paramref name="imageCount"/> values).</exception>
    public static bool[]? ReadPoisonFlags(byte[] bytes, string fileName, DatasetReadOptions? options = null, int? imageCount = null)
    {
        options ??= DatasetReadOptions.Default;
        if (!SafeArchive.IsZip(bytes))
        {
            return null;
        }

        using var zip = SafeArchive.OpenZip(bytes, options.Limits, fileName);
        var entries = zip.Entries.Where(e => e.FullName.EndsWith(".npy", StringComparison.Ordinal)).ToDictionary(e => e.FullName[..^4], StringComparer.Ordinal);
        var found = PoisonFlagNames.Where(entries.ContainsKey).ToList();
        if (found.Count == 0)
        {
            return null;
        }

        if (found.Count > 1)
        {
            throw new DatasetFileException($"{fileName} has several poison-flag arrays ({string.Join(", ", found)}); keep exactly one");
        }

        long used = 0;
        var name = $"{fileName}: array '{found[0]}'";
        using var scope = NewDisposeScope();
        var array = NpyArray.Parse(SafeArchive.ReadEntry(entries[found[0]], options.Limits, ref used, fileName), name, options.Limits);
        if (array.IsFloat || array.Shape.Length != 1)
        {
            throw new DatasetFileException($"{name} must be a vector of N bool (or 0/1 integer) poison flags, got {(array.IsFloat ? "floats" : "shape (" + string.Join(", ", array.Shape) + ")")}");
        }

        var values = array.Values.to_type(ScalarType.Int64).data<long>().ToArray();
        if (values.Any(v => v is not (0 or 1)))
        {
            throw new DatasetFileException($"{name} holds values other than 0 and 1");
        }

        if (imageCount is { } count && values.Length != count)
        {
            throw new DatasetFileException($"{values.Length} poison flags for {count} images");
        }

        return values.Select(v => v == 1).ToArray();
    }

    public static ImageDataset Read(Stream stream, string fileName, DatasetReadOptions? options = null)
    {
        options ??= DatasetReadOptions.Default;
        return Read(SafeArchive.ReadUpload(stream, options.Limits, fileName), fileName, options);
    }

    /// <summary>Reads an .npz from its bytes (an .npy is recognised and refused with an explanation).</summary>
    public static ImageDataset Read(byte[] bytes, string fileName, DatasetReadOptions? options = null)
    {
        options ??= DatasetReadOptions.Default;
        if (NpyArray.HasMagic(bytes))
        {
            throw new DatasetFileException($"{fileName} is a single .npy array, which cannot hold labels; upload an .npz with arrays x (images) and y (labels), e.g. np.savez('data.npz', x=x, y=y)");
        }

        if (!SafeArchive.IsZip(bytes))
        {
            throw new DatasetFileException($"{fileName} is not an .npz file (no zip signature)");
        }

        var limits = options.Limits;
        using var zip = SafeArchive.OpenZip(bytes, limits, fileName);
        var arrays = new Dictionary<string, System.IO.Compression.ZipArchiveEntry>(StringComparer.Ordinal);
        foreach (var e in zip.Entries.Where(e => !e.FullName.EndsWith('/')))
        {
            if (!e.FullName.EndsWith(".npy", StringComparison.Ordinal))
            {
                throw new DatasetFileException($"{fileName}: entry '{e.FullName}' is not an .npy array; not an .npz file");
            }

            arrays[e.FullName[..^4]] = e;
        }

        string xName = Pick(arrays.Keys, ImageNames, "images", fileName);
        string yName = Pick(arrays.Keys, LabelNames, "labels", fileName);
        long used = 0;
        byte[] xBytes = SafeArchive.ReadEntry(arrays[xName], limits, ref used, fileName);
        byte[] yBytes = SafeArchive.ReadEntry(arrays[yName], limits, ref used, fileName);

        using var scope = NewDisposeScope();
        var x = NpyArray.Parse(xBytes, $"{fileName}: array '{xName}'", limits);
        xBytes = [];
        var y = NpyArray.Parse(yBytes, $"{fileName}: array '{yName}'", limits);
        var images = ToImages(x, $"{fileName}: array '{xName}'", options);
        var labels = ToLabels(y, images.shape[0], $"{fileName}: array '{yName}'");
        var data = new ImageDataset(images, labels);
        try
        {
            LabelCheck.Validate(data, options, $"{fileName}: array '{yName}'");
            return data;
        }
        catch
        {
            data.Dispose();
            throw;
        }
    }

    private static string Pick(IEnumerable<string> present, IReadOnlyList<string> names, string what, string fileName)
    {
        var found = names.Where(present.Contains).ToList();
        if (found.Count == 0)
        {
            throw new DatasetFileException(
                $"{fileName} has no {what} array: found [{string.Join(", ", present)}], expected one of [{string.Join(", ", names)}]");
        }

        if (found.Count > 1)
        {
            throw new DatasetFileException($"{fileName} has several {what} arrays ({string.Join(", ", found)}); keep exactly one");
        }

        return found[0];
    }

    private static Tensor ToImages(NpyArray a, string name, DatasetReadOptions options)
    {
        var limits = options.Limits;
        var t = a.Values;
        if (a.Kind == 'b')
        {
            throw new DatasetFileException($"{name} is a bool array; images must be uint8 or float");
        }

        long[] s = a.Shape;
        if (s.Length == 3)
        {
            t = t.unsqueeze(1);
        }
        else if (s.Length == 4)
        {
            bool last = s[3] is 1 or 3, first = s[1] is 1 or 3;
            bool channelsLast = options.ChannelsLast ?? (last && !first ? true : first && !last ? false :
                throw new DatasetFileException(
                    $"{name} has shape ({string.Join(", ", s)}); cannot tell channels-first from channels-last (channels must be 1 or 3) — set the layout explicitly"));
            long c = channelsLast ? s[3] : s[1];
            if (c is not (1 or 3))
            {
                throw new DatasetFileException($"{name} has shape ({string.Join(", ", s)}) read as {(channelsLast ? "N×H×W×C" : "N×C×H×W")}, giving {c} channels; 1 or 3 are accepted");
            }

            if (channelsLast)
            {
                t = t.permute(0, 3, 1, 2);
            }
        }
        else
        {
            throw new DatasetFileException($"{name} has shape ({string.Join(", ", s)}); images must be N×H×W, N×C×H×W or N×H×W×C");
        }

        limits.CheckSampleCount(t.shape[0], name);
        limits.CheckImageSize(t.shape[2], t.shape[3], name);
        if (a.IsFloat)
        {
            var f = t.to_type(ScalarType.Float64);
            if (f.isnan().any().item<bool>() || f.isinf().any().item<bool>())
            {
                throw new DatasetFileException($"{name} contains NaN or infinite values");
            }

            double min = f.min().item<double>(), max = f.max().item<double>();
            if (min < 0)
            {
                throw new DatasetFileException(
                    $"{name} contains negative values (min {min:G4}, max {max:G4}); it looks already normalised — upload raw pixels in [0,1] or [0,255]");
            }

            if (max > 255)
            {
                throw new DatasetFileException($"{name} has values up to {max:G6}; float pixels must lie in [0,1] or [0,255]");
            }

            if (max <= 1)
            {
                f = f.mul(255);
            }

            return f.round().clamp(0, 255).to_type(ScalarType.Byte).contiguous();
        }

        if (a.Kind == 'u' && a.ItemSize == 1)
        {
            return t.contiguous();
        }

        long lo = t.min().item<long>(), hi = t.max().item<long>();
        if (lo < 0 || hi > 255)
        {
            throw new DatasetFileException($"{name} is an integer array with values {lo}..{hi}; pixels must lie in 0..255");
        }

        return t.to_type(ScalarType.Byte).contiguous();
    }

    private static Tensor ToLabels(NpyArray a, long n, string name)
    {
        if (a.Kind is not ('i' or 'u'))
        {
            throw new DatasetFileException($"{name} has {(a.Kind == 'f' ? "float" : "bool")} labels; labels must be integers (class indices)");
        }

        long[] s = a.Shape;
        if (!(s.Length == 1 || (s.Length == 2 && s[1] == 1)))
        {
            throw new DatasetFileException($"{name} has shape ({string.Join(", ", s)}); labels must be a vector of N class indices");
        }

        if (s[0] != n)
        {
            throw new DatasetFileException($"{name} holds {s[0]} labels for {n} images");
        }

        return a.Values.reshape(n).to_type(ScalarType.Int64);
    }
}
