using System.Buffers.Binary;
using System.Numerics;

namespace WebDefense.Core.Models.Serialization;

/// <summary>
/// Reads the pre-1.6 <c>torch.save</c> format (<c>_use_new_zipfile_serialization=False</c>) with the same restricted
/// unpickler as the zip format. The file is five pickles, then the storages' raw bytes:
/// the magic number, the protocol version 1001, a sys-info dict, the object (storages as persistent ids
/// <c>('storage', torch.&lt;T&gt;Storage, key, location, numel, view)</c>), the list of storage keys; then for each key
/// in that order an int64 element count followed by the elements. Every size is checked against the declarations
/// and the limits before anything is allocated, and a storage's bytes are copied only when a kept tensor needs them.
/// </summary>
internal static class PyTorchLegacyCheckpoint
{
    private static readonly BigInteger MagicNumber = BigInteger.Parse("119547037146038801333356", System.Globalization.CultureInfo.InvariantCulture);
    private const long ProtocolVersion = 1001;

    /// <summary>The magic number pickle as torch.save writes it (protocol 2): PROTO 2, LONG1 of 10 bytes.</summary>
    public static bool HasMagic(ReadOnlySpan<byte> head) =>
        head.Length >= 14 && head[0] == 0x80 && head[2] == 0x8a && head[3] == 10
        && new BigInteger(head.Slice(4, 10), isUnsigned: false, isBigEndian: false) == MagicNumber;

    /// <summary>Unpickles the object of a legacy file; its tensors are lazy views of storages in <paramref name="file"/>.</summary>
    public static object? ReadRoot(ReadOnlyMemory<byte> file, ModelReadLimits limits)
    {
        var pos = 0;
        var magic = ReadPlain(file, ref pos, limits, "magic number");
        if (magic is not BigInteger m || m != MagicNumber)
        {
            throw new ModelFileException("file starts with a pickle but not with torch.save's magic number, so it is not a PyTorch checkpoint");
        }

        if (ReadPlain(file, ref pos, limits, "protocol version") is not long version || version != ProtocolVersion)
        {
            throw new ModelFileException($"legacy PyTorch checkpoint has an unknown protocol version (expected {ProtocolVersion})");
        }

        if (ReadPlain(file, ref pos, limits, "system info") is not PickleDict sysInfo)
        {
            throw new ModelFileException("legacy PyTorch checkpoint has no system-info dict");
        }

        if (sysInfo.TryGet("little_endian", out var little) && little is false)
        {
            throw new ModelFileException("legacy PyTorch checkpoint was written on a big-endian machine; only little-endian files are read");
        }

        var storages = new LegacyStorages(file, limits);
        var reader = new PickleReader(Window(file, pos, limits), limits, new TorchGlobals(limits).Resolve, storages.PersistentLoad);
        var root = reader.Load();
        pos += reader.Position;

        if (ReadPlain(file, ref pos, limits, "storage key list") is not List<object?> keys)
        {
            throw new ModelFileException("legacy PyTorch checkpoint has no storage key list after the object");
        }

        storages.Locate(keys, pos);
        return root;
    }

    /// <summary>One of the small pickles around the object: no globals and no persistent ids.</summary>
    private static object? ReadPlain(ReadOnlyMemory<byte> file, ref int pos, ModelReadLimits limits, string what)
    {
        if (pos >= file.Length)
        {
            throw new ModelFileException($"legacy PyTorch checkpoint is truncated before its {what}");
        }

        var reader = new PickleReader(Window(file, pos, limits), limits,
            (module, name) => throw new ModelFileException($"pickle GLOBAL '{module}.{name}' is not allowed in a legacy checkpoint's {what}"),
            _ => throw new ModelFileException($"a legacy checkpoint's {what} refers to a storage"));
        var value = reader.Load();
        pos += reader.Position;
        return value;
    }

    private static ReadOnlyMemory<byte> Window(ReadOnlyMemory<byte> file, int pos, ModelReadLimits limits) =>
        file.Slice(pos, (int)Math.Min(file.Length - pos, limits.MaxPickleBytes));

    /// <summary>Storages declared by persistent ids; their bytes are located in the file after the key list.</summary>
    private sealed class LegacyStorages(ReadOnlyMemory<byte> file, ModelReadLimits limits)
    {
        private readonly Dictionary<string, StorageHandle> _declared = new(StringComparer.Ordinal);
        private readonly Dictionary<string, long> _offsets = new(StringComparer.Ordinal);
        private long _totalBytes;

        public object? PersistentLoad(object? pid)
        {
            if (pid is object?[] { Length: >= 1 } t && t[0] is "module")
            {
                throw new ModelFileException(
                    "the file pickles a whole nn.Module (its class and source code), which is not read; save model.state_dict() " +
                    "instead, or export the model with torch.jit.script(model).save('model.ts.pt')");
            }

            if (pid is not object?[] { Length: 5 or 6 } s || s[0] is not "storage")
            {
                throw new ModelFileException($"pickle persistent id {PickleReader.Describe(pid)} is not ('storage', type, key, location, numel, view)");
            }

            if (s[1] is not StorageTypeToken type || s[2] is not string key || s[3] is not string || s[4] is not long numel)
            {
                throw new ModelFileException("pickle persistent id is not ('storage', torch.<T>Storage, str key, str location, int numel, view)");
            }

            if (s.Length == 6 && s[5] is not null)
            {
                throw new ModelFileException($"storage '{key}' is a view of another storage (PyTorch < 0.4 files); such files are not read");
            }

            if (key.Length is 0 or > 256)
            {
                throw new ModelFileException("storage key is empty or longer than 256 characters");
            }

            if (_declared.TryGetValue(key, out var existing))
            {
                if (existing.DType != type.DType || existing.Numel != numel)
                {
                    throw new ModelFileException($"storage '{key}' is declared twice with different dtypes or sizes");
                }

                return existing;
            }

            if (_declared.Count >= limits.MaxTensorCount)
            {
                throw new ModelFileException($"checkpoint has more than {limits.MaxTensorCount} storages");
            }

            var size = TensorDTypes.ElementSize(type.DType);
            if (numel < 0 || numel > limits.MaxTotalTensorBytes / size || numel * size > file.Length)
            {
                throw new ModelFileException($"storage '{key}' declares {numel} elements, more than the file or the limit holds");
            }

            _totalBytes += numel * size;
            if (_totalBytes > limits.MaxTotalTensorBytes)
            {
                throw new ModelFileException($"tensor data is more than the limit of {limits.MaxTotalTensorBytes} bytes");
            }

            var handle = new StorageHandle(key, type.DType, numel, () => Bytes(key, numel * size));
            _declared[key] = handle;
            return handle;
        }

        /// <summary>Walks the data section in key-list order, checking every count and bound; allocates nothing.</summary>
        public void Locate(List<object?> keys, long pos)
        {
            if (keys.Count != _declared.Count)
            {
                throw new ModelFileException($"legacy checkpoint lists {keys.Count} storages but its object declares {_declared.Count}");
            }

            foreach (var k in keys)
            {
                if (k is not string key || !_declared.TryGetValue(key, out var storage))
                {
                    throw new ModelFileException($"legacy checkpoint lists storage {PickleReader.Describe(k)} '{k}', which its object does not declare");
                }

                if (_offsets.ContainsKey(key))
                {
                    throw new ModelFileException($"legacy checkpoint lists storage '{key}' twice");
                }

                if (file.Length - pos < 8)
                {
                    throw new ModelFileException($"legacy checkpoint is truncated at storage '{key}' (byte {pos} of {file.Length})");
                }

                var count = BinaryPrimitives.ReadInt64LittleEndian(file.Span.Slice((int)pos, 8));
                if (count != storage.Numel)
                {
                    throw new ModelFileException($"storage '{key}' holds {count} elements in the file but {storage.Numel} were declared");
                }

                var bytes = storage.Numel * TensorDTypes.ElementSize(storage.DType);
                if (file.Length - pos - 8 < bytes)
                {
                    throw new ModelFileException(
                        $"legacy checkpoint is truncated: storage '{key}' needs {bytes} bytes at byte {pos + 8}, the file has {file.Length}");
                }

                _offsets[key] = pos + 8;
                pos += 8 + bytes;
            }
        }

        private byte[] Bytes(string key, long bytes) => _offsets.TryGetValue(key, out var offset)
            ? file.Slice((int)offset, (int)bytes).ToArray()
            : throw new ModelFileException($"storage '{key}' has no data in the file");
    }
}
