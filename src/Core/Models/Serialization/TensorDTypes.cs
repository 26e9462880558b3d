using static TorchSharp.torch;

namespace WebDefense.Core.Models.Serialization;

/// <summary>Element sizes and the names PyTorch's file formats use for the dtypes we accept.</summary>
internal static class TensorDTypes
{
    public static int ElementSize(ScalarType t) => t switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int16 => 2,
        ScalarType.Int8 or ScalarType.Byte or ScalarType.Bool => 1,
        _ => throw new ModelFileException($"tensor dtype {t} is not supported"),
    };

    /// <summary><c>torch.FloatStorage</c> etc. → dtype.</summary>
    public static bool TryFromStorageName(string name, out ScalarType type)
    {
        ScalarType? t = name switch
        {
            "FloatStorage" => ScalarType.Float32,
            "DoubleStorage" => ScalarType.Float64,
            "HalfStorage" => ScalarType.Float16,
            "BFloat16Storage" => ScalarType.BFloat16,
            "LongStorage" => ScalarType.Int64,
            "IntStorage" => ScalarType.Int32,
            "ShortStorage" => ScalarType.Int16,
            "CharStorage" => ScalarType.Int8,
            "ByteStorage" => ScalarType.Byte,
            "BoolStorage" => ScalarType.Bool,
            _ => null,
        };
        type = t ?? default;
        return t.HasValue;
    }

    public static string StorageName(ScalarType t) => t switch
    {
        ScalarType.Float32 => "FloatStorage",
        ScalarType.Float64 => "DoubleStorage",
        ScalarType.Float16 => "HalfStorage",
        ScalarType.BFloat16 => "BFloat16Storage",
        ScalarType.Int64 => "LongStorage",
        ScalarType.Int32 => "IntStorage",
        ScalarType.Int16 => "ShortStorage",
        ScalarType.Int8 => "CharStorage",
        ScalarType.Byte => "ByteStorage",
        ScalarType.Bool => "BoolStorage",
        _ => throw new ModelFileException($"tensor dtype {t} cannot be written"),
    };

    /// <summary>Number of elements of a shape, with overflow and negative-size checks.</summary>
    public static long CheckedNumel(IReadOnlyList<long> shape, string what)
    {
        long n = 1;
        foreach (var d in shape)
        {
            if (d < 0)
            {
                throw new ModelFileException($"{what}: negative dimension {d}");
            }

            try
            {
                n = checked(n * d);
            }
            catch (OverflowException)
            {
                throw new ModelFileException($"{what}: shape [{string.Join(", ", shape)}] is too large");
            }
        }

        return n;
    }

    /// <summary>Makes a CPU tensor of the given dtype and shape from raw little-endian bytes (copied).</summary>
    public static Tensor FromBytes(ReadOnlySpan<byte> data, ScalarType dtype, long[] shape)
    {
        var t = empty(shape, dtype: dtype);
        if (data.Length > 0)
        {
            if (dtype == ScalarType.Bool)
            {
                // Arbitrary bytes in a bool tensor are undefined behaviour in libtorch: normalise through uint8.
                using var u8 = empty(shape, dtype: ScalarType.Byte);
                u8.bytes = data.ToArray();
                t.copy_(u8.ne(0));
            }
            else
            {
                t.bytes = data.ToArray();
            }
        }

        return t;
    }

    /// <summary>Raw little-endian bytes of a tensor, row-major (contiguous copy on the CPU).</summary>
    public static byte[] ToBytes(Tensor t)
    {
        using var scope = NewDisposeScope();
        var c = t.detach().cpu().contiguous();
        return c.numel() == 0 ? [] : c.bytes.ToArray();
    }
}
