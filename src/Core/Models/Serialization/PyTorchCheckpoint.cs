using System.IO.Compression;
using System.Text;
using static TorchSharp.torch;

namespace WebDefense.Core.Models.Serialization;

/// <summary>
/// Reads and writes PyTorch <c>torch.save</c> zip archives holding a state dict, without executing any pickle code
/// (see docs torch-runtime.md §D 3.4 and the restricted-reader rules).
/// </summary>
public static class PyTorchCheckpoint
{
    /// <summary>
    /// Keys under which a training checkpoint keeps its state dict, tried in this order when the top-level object is
    /// not itself a dict of tensors.
    /// </summary>
    public static IReadOnlyList<string> WrapperKeys { get; } =
        ["state_dict", "model_state_dict", "net_state_dict", "model", "net", "state", "ema_state_dict", "ema", "model_ema", "ema_model"];

    /// <summary>Prefixes stripped from every key when all keys share them (DataParallel's <c>module.</c>, wrappers' <c>model.</c>, torch.compile's <c>_orig_mod.</c>).</summary>
    public static IReadOnlyList<string> StrippedPrefixes { get; } = ["module.", "model.", "_orig_mod."];

    /// <summary>Reads the state dict from a <c>torch.save</c> file. Throws <see cref="ModelFileException"/> for anything else.</summary>
    public static StateDict Read(Stream stream, ModelReadLimits? limits = null) => Read(stream, out _, limits);

    /// <summary>
    /// Reads the state dict from a <c>torch.save</c> file, zip (PyTorch ≥ 1.6) or legacy pickle
    /// (<c>_use_new_zipfile_serialization=False</c>, PyTorch &lt; 1.6), and says what was around it.
    /// </summary>
    public static StateDict Read(Stream stream, out CheckpointContents contents, ModelReadLimits? limits = null)
    {
        limits ??= ModelReadLimits.Default;
        using var seekable = SeekableCopy(stream, limits);
        var head = new byte[16];
        var n = seekable.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        seekable.Position = 0;
        if (n >= 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4)
        {
            return ReadZip(seekable, limits, out contents);
        }

        if (PyTorchLegacyCheckpoint.HasMagic(head.AsSpan(0, n)))
        {
            using var scope = NewDisposeScope();
            var root = PyTorchLegacyCheckpoint.ReadRoot(seekable.GetBuffer().AsMemory(0, (int)seekable.Length), limits);
            return Materialize(root, limits, out contents);
        }

        if (n >= 1 && head[0] == 0x80)
        {
            throw new ModelFileException("file is a Python pickle without torch.save's magic number, so it is not a PyTorch checkpoint; save the model with torch.save(model.state_dict(), f)");
        }

        throw new ModelFileException("file is not a PyTorch checkpoint (no zip signature and no legacy torch.save magic number)");
    }

    private static StateDict ReadZip(MemoryStream seekable, ModelReadLimits limits, out CheckpointContents contents)
    {
        ZipArchive zip;
        try
        {
            zip = new ZipArchive(seekable, ZipArchiveMode.Read, leaveOpen: true);
        }
        catch (InvalidDataException e)
        {
            throw new ModelFileException($"zip archive is damaged or truncated: {e.Message}", e);
        }

        using (zip)
        {
            var prefix = FindPrefix(zip);
            var byteorder = zip.GetEntry(prefix + "byteorder");
            if (byteorder is not null)
            {
                var order = Encoding.ASCII.GetString(ReadEntry(byteorder, 16, "byteorder")).Trim();
                if (order != "little")
                {
                    throw new ModelFileException($"checkpoint byteorder is '{order}'; only little-endian files are read");
                }
            }

            var pkl = zip.GetEntry(prefix + "data.pkl")!;
            var pickle = ReadEntry(pkl, limits.MaxPickleBytes, "data.pkl");

            using var scope = NewDisposeScope();
            var loader = new ArchiveLoader(zip, prefix, limits);
            var root = new PickleReader(pickle, limits, new TorchGlobals(limits).Resolve, loader.PersistentLoad).Load();
            return Materialize(root, limits, out contents);
        }
    }

    /// <summary>Finds the state dict in an unpickled object and copies its tensors out (the caller holds a dispose scope).</summary>
    private static StateDict Materialize(object? root, ModelReadLimits limits, out CheckpointContents contents)
    {
        var (items, container, ignored) = Unwrap(root);
        var (refs, stripped) = StripPrefixes(items);
        contents = new CheckpointContents(container, stripped, ignored);
        if (refs.Count > limits.MaxTensorCount || refs.Sum(r => r.Tensor.ByteCount) > limits.MaxTotalTensorBytes)
        {
            throw new ModelFileException(
                $"state dict has {refs.Count} tensors of {refs.Sum(r => r.Tensor.ByteCount)} bytes, more than the limits " +
                $"({limits.MaxTensorCount} tensors, {limits.MaxTotalTensorBytes} bytes)");
        }

        var result = new StateDict();
        try
        {
            // Each entry gets its own tensor, even when the file shares one storage (or one tensor) between keys.
            foreach (var (key, tensor) in refs)
            {
                result.Add(key, tensor.Materialize());
            }
        }
        catch
        {
            result.Dispose();
            throw;
        }

        return result;
    }

    /// <summary>
    /// Writes a state dict as a zip archive that PyTorch (1.13 and later) reads with <c>torch.load</c>: stored
    /// entries <c>&lt;archiveName&gt;/data.pkl</c> (protocol 2, OrderedDict of <c>_rebuild_tensor_v2</c> calls with
    /// persistent-id storages), <c>&lt;archiveName&gt;/data/&lt;k&gt;</c>, <c>version</c> and <c>byteorder</c>.
    /// The output is deterministic (fixed entry timestamps).
    /// </summary>
    public static void Write(StateDict stateDict, Stream stream, string archiveName = "archive")
    {
        if (archiveName.Length == 0 || archiveName.IndexOfAny(['/', '\\']) >= 0 || archiveName.Contains(".."))
        {
            throw new ArgumentException($"archive name '{archiveName}' must be a plain name", nameof(archiveName));
        }

        var entries = stateDict.Entries.ToList();
        using var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true);
        var stamp = new DateTimeOffset(1980, 1, 1, 0, 0, 0, TimeSpan.Zero);

        void Add(string name, byte[] content)
        {
            var e = zip.CreateEntry($"{archiveName}/{name}", CompressionLevel.NoCompression);
            e.LastWriteTime = stamp;
            using var s = e.Open();
            s.Write(content);
        }

        Add("data.pkl", PickleWriter.StateDictPickle(entries.Select(kv => (kv.Key, kv.Value)).ToList()));
        Add("byteorder", "little"u8.ToArray());
        for (var i = 0; i < entries.Count; i++)
        {
            Add($"data/{i}", TensorDTypes.ToBytes(entries[i].Value));
        }

        Add("version", "3\n"u8.ToArray());
    }

    private static string FindPrefix(ZipArchive zip)
    {
        var pkls = zip.Entries.Where(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal)
                                          && e.FullName.IndexOf('/') == e.FullName.Length - "/data.pkl".Length).ToList();
        var names = zip.Entries.Select(e => e.FullName).ToList();
        if (names.Any(n => n.Contains("/code/", StringComparison.Ordinal) || n.EndsWith("/constants.pkl", StringComparison.Ordinal)))
        {
            throw new ModelFileException(
                "file is a TorchScript archive (it has code/ and constants.pkl), not a state dict; upload it as TorchScript");
        }

        if (pkls.Count == 0)
        {
            throw new ModelFileException(
                $"zip archive has no <name>/data.pkl, so it is not a torch.save checkpoint (entries: {string.Join(", ", names.Take(5))})");
        }

        if (pkls.Count > 1)
        {
            throw new ModelFileException($"zip archive has {pkls.Count} data.pkl entries; expected one");
        }

        return pkls[0].FullName[..^"data.pkl".Length];
    }

    internal static byte[] ReadEntry(ZipArchiveEntry entry, long maxBytes, string what)
    {
        if (entry.Length > maxBytes || entry.Length < 0)
        {
            throw new ModelFileException($"{what} is {entry.Length} bytes, more than the limit of {maxBytes}");
        }

        var buffer = new byte[entry.Length];
        try
        {
            using var s = entry.Open();
            var read = 0;
            while (read < buffer.Length)
            {
                var k = s.Read(buffer, read, buffer.Length - read);
                if (k == 0)
                {
                    throw new ModelFileException($"{what} is truncated ({read} of {buffer.Length} bytes)");
                }

                read += k;
            }

            if (s.ReadByte() >= 0)
            {
                throw new ModelFileException($"{what} holds more data than its declared {buffer.Length} bytes");
            }
        }
        catch (InvalidDataException e)
        {
            throw new ModelFileException($"{what} is damaged in the zip archive: {e.Message}", e);
        }

        return buffer;
    }

    private static MemoryStream SeekableCopy(Stream stream, ModelReadLimits limits)
    {
        var max = limits.MaxTotalTensorBytes + limits.MaxPickleBytes + (16L << 20);
        if (stream.CanSeek && stream.Length - stream.Position > max)
        {
            throw new ModelFileException($"file is {stream.Length} bytes, more than the limit of {max}");
        }

        var copy = new MemoryStream();
        var buffer = new byte[81920];
        int k;
        while ((k = stream.Read(buffer)) > 0)
        {
            if (copy.Length + k > max)
            {
                throw new ModelFileException($"file is more than the limit of {max} bytes");
            }

            copy.Write(buffer, 0, k);
        }

        copy.Position = 0;
        return copy;
    }

    /// <summary>
    /// Finds the state dict in an unpickled checkpoint: the object itself when it is a dict of tensors, else the first
    /// of <see cref="WrapperKeys"/> that holds one (also one level further down, e.g. <c>{'model': {'state_dict': …}}</c>),
    /// else the only top-level dict of tensors that is not optimizer or scheduler state. Everything else is listed as
    /// ignored and never materialised.
    /// </summary>
    internal static (List<(string Key, TensorRef Tensor)> Items, string? Container, List<string> Ignored) Unwrap(object? root)
    {
        if (root is TensorRef)
        {
            throw new ModelFileException("file holds a single tensor, not a state dict");
        }

        if (root is not PickleDict dict)
        {
            throw new ModelFileException($"file holds a {PickleReader.Describe(root)}, not a state dict (a dict of tensors)");
        }

        var ignored = new List<string>();
        string? container = null;
        var depth = 0;
        while (!HoldsTensors(dict))
        {
            var found = Find(dict);
            if (found is null || ++depth > 2)
            {
                var keys = string.Join(", ", dict.Items.Take(20).Select(kv => $"'{PickleDict.KeyText(kv.Key)}' ({PickleReader.Describe(kv.Value)})"));
                throw new ModelFileException(
                    $"no state dict found: the top-level dict has no tensors and none of the keys {string.Join(", ", WrapperKeys)} " +
                    $"holds a dict of tensors; top-level keys: {keys}. Save model.state_dict(), or export the model with " +
                    "torch.jit.script(model).save('model.ts.pt')");
            }

            ignored.AddRange(dict.Items.Where(kv => PickleDict.KeyText(kv.Key) != found).Select(kv => Summary(container, kv)));
            container = container is null ? found : container + "." + found;
            dict.TryGet(found, out var inner);
            dict = (PickleDict)inner!;
        }

        ignored.AddRange(dict.Items.Where(kv => kv.Value is not TensorRef).Select(kv => Summary(container, kv)));
        var items = dict.Items.Where(kv => kv.Value is TensorRef).Select(kv => (PickleDict.KeyText(kv.Key), (TensorRef)kv.Value!)).ToList();
        return (items, container, ignored);
    }

    private static bool HoldsTensors(PickleDict d) => d.Items.Any(kv => kv.Value is TensorRef);

    private static bool HoldsTensorsBelow(PickleDict d) =>
        HoldsTensors(d) || d.Items.Any(kv => kv.Value is PickleDict inner && HoldsTensors(inner));

    private static string? Find(PickleDict dict)
    {
        foreach (var key in WrapperKeys)
        {
            if (dict.TryGet(key, out var inner) && inner is PickleDict d && HoldsTensorsBelow(d))
            {
                return key;
            }
        }

        var others = dict.Items
            .Where(kv => kv.Value is PickleDict d && HoldsTensors(d) && kv.Key is string k
                         && !k.Contains("optim", StringComparison.OrdinalIgnoreCase) && !k.Contains("sched", StringComparison.OrdinalIgnoreCase)
                         && !k.Contains("scaler", StringComparison.OrdinalIgnoreCase))
            .Select(kv => (string)kv.Key!).ToList();
        return others.Count == 1 ? others[0] : null;
    }

    /// <summary>"epoch (int 29)", "optimizer (dict)", "pattern (dict of 2 tensors)".</summary>
    private static string Summary(string? container, KeyValuePair<object?, object?> kv)
    {
        var name = (container is null ? "" : container + ".") + PickleDict.KeyText(kv.Key);
        var what = kv.Value switch
        {
            long or bool or System.Numerics.BigInteger => $"{PickleReader.Describe(kv.Value)} {Convert.ToString(kv.Value, System.Globalization.CultureInfo.InvariantCulture)}",
            double d => $"float {d.ToString("0.####", System.Globalization.CultureInfo.InvariantCulture)}",
            PickleDict d when HoldsTensors(d) => $"dict of {d.Items.Count(x => x.Value is TensorRef)} tensors",
            PickleDict d => $"dict of {d.Count} entries",
            List<object?> l => $"list of {l.Count}",
            TensorRef t => $"tensor [{string.Join(",", t.Size)}]",
            _ => PickleReader.Describe(kv.Value),
        };
        return $"{name} ({what})";
    }

    internal static (List<(string Key, TensorRef Tensor)> Items, List<string> Stripped) StripPrefixes(List<(string Key, TensorRef Tensor)> items)
    {
        var stripped = new List<string>();
        for (var round = 0; round < 2; round++)
        {
            var p = StrippedPrefixes.FirstOrDefault(p =>
                items.Count > 0 && items.All(kv => kv.Key.StartsWith(p, StringComparison.Ordinal) && kv.Key.Length > p.Length));
            if (p is null)
            {
                break;
            }

            stripped.Add(p);
            items = items.Select(kv => (kv.Key[p.Length..], kv.Tensor)).ToList();
        }

        return (items, stripped);
    }

    /// <summary>Loads storages from the archive for BINPERSID, once per key.</summary>
    private sealed class ArchiveLoader(ZipArchive zip, string prefix, ModelReadLimits limits)
    {
        private readonly Dictionary<string, StorageHandle> _storages = new(StringComparer.Ordinal);
        private long _totalBytes;

        public object? PersistentLoad(object? pid)
        {
            if (pid is not object?[] t || t.Length != 5 || t[0] is not "storage")
            {
                throw new ModelFileException($"pickle persistent id {PickleReader.Describe(pid)} is not ('storage', type, key, location, numel)");
            }

            if (t[1] is not StorageTypeToken type || t[2] is not string key || t[3] is not string || t[4] is not long numel)
            {
                throw new ModelFileException("pickle persistent id is not ('storage', torch.<T>Storage, str key, str location, int numel)");
            }

            if (key.Length == 0 || key.Length > 256 || key.Contains('/') || key.Contains('\\') || key.Contains(".."))
            {
                throw new ModelFileException($"storage key '{key}' is not allowed (it must be a plain name without '/' or '..')");
            }

            if (_storages.TryGetValue(key, out var existing))
            {
                if (existing.DType != type.DType || existing.Numel != numel)
                {
                    throw new ModelFileException($"storage '{key}' is declared twice with different dtypes or sizes");
                }

                return existing;
            }

            if (_storages.Count >= limits.MaxTensorCount)
            {
                throw new ModelFileException($"checkpoint has more than {limits.MaxTensorCount} storages");
            }

            var size = TensorDTypes.ElementSize(type.DType);
            if (numel < 0 || numel > limits.MaxTotalTensorBytes / size)
            {
                throw new ModelFileException($"storage '{key}' declares {numel} elements, more than the limit allows");
            }

            var bytes = numel * size;
            if (_totalBytes + bytes > limits.MaxTotalTensorBytes)
            {
                throw new ModelFileException($"tensor data is more than the limit of {limits.MaxTotalTensorBytes} bytes");
            }

            _totalBytes += bytes;
            var entry = zip.GetEntry($"{prefix}data/{key}")
                        ?? throw new ModelFileException($"storage '{key}' has no entry data/{key} in the archive");
            if (entry.Length != bytes)
            {
                throw new ModelFileException(
                    $"storage '{key}' entry is {entry.Length} bytes but {numel} × {type.Name} elements need {bytes}");
            }

            var handle = new StorageHandle(key, type.DType, numel, () => ReadEntry(entry, bytes, $"storage '{key}'"));
            _storages[key] = handle;
            return handle;
        }
    }
}
