using System.Text;
using static TorchSharp.torch;

namespace WebDefense.Core.Models.Serialization;

/// <summary>
/// TorchSharp's own <c>Module.save</c>/<c>Module.load</c> format (<c>.dat</c>): LEB128 entry count, then per entry a
/// .NET <c>BinaryWriter</c> string (LEB128 byte length + UTF-8 name), LEB128 ScalarType code, LEB128 rank, LEB128
/// dimensions and the raw little-endian contiguous bytes. This reader checks every value against limits.
/// </summary>
public static class TorchSharpStateFile
{
    // ScalarType codes of TorchSharp's .dat format (the libtorch enum values).
    private static readonly Dictionary<long, ScalarType> Codes = new()
    {
        [0] = ScalarType.Byte, [1] = ScalarType.Int8, [2] = ScalarType.Int16, [3] = ScalarType.Int32,
        [4] = ScalarType.Int64, [5] = ScalarType.Float16, [6] = ScalarType.Float32, [7] = ScalarType.Float64,
        [11] = ScalarType.Bool, [15] = ScalarType.BFloat16,
    };

    public static StateDict Read(Stream stream, ModelReadLimits? limits = null)
    {
        limits ??= ModelReadLimits.Default;
        var count = ReadLeb(stream, "entry count");
        if (count > limits.MaxTensorCount)
        {
            throw new ModelFileException($"TorchSharp file declares {count} tensors, more than the limit of {limits.MaxTensorCount}");
        }

        var result = new StateDict();
        try
        {
            using var scope = NewDisposeScope();
            long total = 0;
            for (long i = 0; i < count; i++)
            {
                var name = ReadName(stream, limits);
                var code = ReadLeb(stream, $"dtype of '{name}'");
                if (!Codes.TryGetValue(code, out var dtype))
                {
                    throw new ModelFileException($"TorchSharp file tensor '{name}' has unsupported dtype code {code}");
                }

                var rank = ReadLeb(stream, $"rank of '{name}'");
                if (rank > limits.MaxTensorRank)
                {
                    throw new ModelFileException($"TorchSharp file tensor '{name}' has {rank} dimensions, more than {limits.MaxTensorRank}");
                }

                var shape = new long[rank];
                for (var d = 0; d < rank; d++)
                {
                    shape[d] = ReadLeb(stream, $"shape of '{name}'");
                }

                var numel = TensorDTypes.CheckedNumel(shape, $"TorchSharp file tensor '{name}'");
                var size = TensorDTypes.ElementSize(dtype);
                if (numel > (limits.MaxTotalTensorBytes - total) / size)
                {
                    throw new ModelFileException($"tensor data is more than the limit of {limits.MaxTotalTensorBytes} bytes (at '{name}')");
                }

                var bytes = numel * size;
                total += bytes;
                var data = new byte[bytes];
                if (stream.ReadAtLeast(data, data.Length, throwOnEndOfStream: false) != data.Length)
                {
                    throw new ModelFileException($"TorchSharp file is truncated in the data of '{name}'");
                }

                result.Add(name, TensorDTypes.FromBytes(data, dtype, shape));
            }
        }
        catch
        {
            result.Dispose();
            throw;
        }

        return result;
    }

    /// <summary>Writes the state dict so that TorchSharp's <c>Module.load</c> reads it for a module with the same keys.</summary>
    public static void Write(StateDict stateDict, Stream stream)
    {
        using var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        WriteLeb(w, stateDict.Count);
        foreach (var (name, t) in stateDict.Entries)
        {
            w.Write(name);
            if (!Codes.ContainsValue(t.dtype))
            {
                throw new ArgumentException($"tensor '{name}' has dtype {t.dtype}, which this writer does not support");
            }

            var code = Codes.First(kv => kv.Value == t.dtype).Key;
            WriteLeb(w, code);
            WriteLeb(w, t.shape.Length);
            foreach (var d in t.shape)
            {
                WriteLeb(w, d);
            }

            w.Write(TensorDTypes.ToBytes(t));
        }
    }

    /// <summary>Reads an unsigned LEB128 value of at most 63 bits.</summary>
    internal static long ReadLeb(Stream s, string what)
    {
        long v = 0;
        for (var shift = 0; shift < 63; shift += 7)
        {
            var b = s.ReadByte();
            if (b < 0)
            {
                throw new ModelFileException($"TorchSharp file is truncated in the {what}");
            }

            v |= (long)(b & 0x7f) << shift;
            if ((b & 0x80) == 0)
            {
                return v;
            }
        }

        throw new ModelFileException($"TorchSharp file has an overlong number in the {what}");
    }

    private static void WriteLeb(BinaryWriter w, long v)
    {
        var u = (ulong)v;
        do
        {
            var b = (byte)(u & 0x7f);
            u >>= 7;
            w.Write(u != 0 ? (byte)(b | 0x80) : b);
        }
        while (u != 0);
    }

    internal static string ReadName(Stream s, ModelReadLimits limits)
    {
        var len = ReadLeb(s, "tensor name length");
        if (len == 0 || len > Math.Min(limits.MaxStringBytes, 4096))
        {
            throw new ModelFileException($"TorchSharp file has a tensor name of {len} bytes");
        }

        var b = new byte[len];
        if (s.ReadAtLeast(b, b.Length, throwOnEndOfStream: false) != b.Length)
        {
            throw new ModelFileException("TorchSharp file is truncated in a tensor name");
        }

        try
        {
            return new UTF8Encoding(false, true).GetString(b);
        }
        catch (DecoderFallbackException e)
        {
            throw new ModelFileException("TorchSharp file has a tensor name that is not UTF-8", e);
        }
    }
}
