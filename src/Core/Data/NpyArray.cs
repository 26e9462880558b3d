using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using static TorchSharp.torch;

namespace WebDefense.Core.Data;

/// <summary>
/// One array parsed from the <c>.npy</c> format (versions 1.0, 2.0 and 3.0): magic <c>\x93NUMPY</c>, a
/// Python-dict header with <c>descr</c>, <c>fortran_order</c> and <c>shape</c>, then the raw data.
/// Numeric dtypes only (bool, int8–int64, uint8–uint64, float16/32/64), either byte order, C or Fortran
/// order. Object arrays (pickles) and structured dtypes are refused.
/// </summary>
internal sealed partial class NpyArray
{
    private static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    private NpyArray(char kind, int itemSize, long[] shape, Tensor values)
    {
        Kind = kind;
        ItemSize = itemSize;
        Shape = shape;
        Values = values;
    }

    /// <summary>'u', 'i', 'f' or 'b'.</summary>
    public char Kind { get; }
    public int ItemSize { get; }
    public long[] Shape { get; }
    public long Count => Shape.Aggregate(1L, (a, b) => a * b);
    public bool IsFloat => Kind == 'f';

    /// <summary>C-contiguous tensor of the values (uint16/uint32 widened to int32/int64, float16 to float32, uint64 to int64).</summary>
    public Tensor Values { get; }

    public static bool HasMagic(ReadOnlySpan<byte> b) => b.Length >= 6 && b[..6].SequenceEqual(Magic);

    /// <summary>Parses an array; the returned tensor belongs to the caller's dispose scope.</summary>
    public static NpyArray Parse(byte[] b, string name, DatasetReadLimits limits)
    {
        if (!HasMagic(b))
        {
            string hint = b.Length > 0 && b[0] == 0x80 ? " (it looks like a Python pickle; pickles are never loaded)" : "";
            throw new DatasetFileException($"{name} is not a .npy array: the \\x93NUMPY magic is missing{hint}");
        }

        if (b.Length < 10)
        {
            throw new DatasetFileException($"{name} is truncated inside its header");
        }

        int major = b[6];
        int headerLen, start;
        switch (major)
        {
            case 1:
                headerLen = BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(8));
                start = 10;
                break;
            case 2 or 3:
                if (b.Length < 12)
                {
                    throw new DatasetFileException($"{name} is truncated inside its header");
                }

                uint len = BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(8));
                if (len > 1 << 20)
                {
                    throw new DatasetFileException($"{name} declares a {len}-byte header; refusing");
                }

                headerLen = (int)len;
                start = 12;
                break;
            default:
                throw new DatasetFileException($"{name} uses .npy format version {major}.{b[7]}; versions 1, 2 and 3 are supported");
        }

        if (b.Length < start + headerLen)
        {
            throw new DatasetFileException($"{name} is truncated inside its header");
        }

        string header = (major == 3 ? Encoding.UTF8 : Encoding.Latin1).GetString(b, start, headerLen);
        int dataStart = start + headerLen;

        if (DescrListRegex().IsMatch(header))
        {
            throw new DatasetFileException($"{name} has a structured (record) dtype; only plain numeric arrays are accepted");
        }

        var descr = DescrRegex().Match(header);
        var fortran = FortranRegex().Match(header);
        var shapeMatch = ShapeRegex().Match(header);
        if (!descr.Success || !fortran.Success || !shapeMatch.Success)
        {
            throw new DatasetFileException($"{name} has a malformed .npy header: {Clip(header)}");
        }

        string d = descr.Groups[1].Value;
        var dm = DtypeRegex().Match(d);
        if (d.Contains('O'))
        {
            throw new DatasetFileException($"{name} holds Python objects (dtype '{d}', needs allow_pickle); only numeric arrays are accepted — save with a numeric dtype such as uint8");
        }

        if (!dm.Success)
        {
            throw new DatasetFileException($"{name} has dtype '{d}'; only bool, integer and float arrays are accepted");
        }

        char order = dm.Groups[1].Value.Length == 0 ? '|' : dm.Groups[1].Value[0];
        char kind = dm.Groups[2].Value[0];
        int size = int.Parse(dm.Groups[3].Value);
        bool supported = kind switch
        {
            'b' => size == 1,
            'u' or 'i' => size is 1 or 2 or 4 or 8,
            'f' => size is 2 or 4 or 8,
            _ => false,
        };
        if (!supported)
        {
            throw new DatasetFileException($"{name} has dtype '{d}'; only bool, integer and float (16/32/64-bit) arrays are accepted");
        }

        bool bigEndian = order == '>' || (order == '=' && !BitConverter.IsLittleEndian);
        var shape = new List<long>();
        foreach (var part in shapeMatch.Groups[1].Value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (!long.TryParse(part.TrimEnd('L'), out long dim) || dim < 0 || dim > int.MaxValue)
            {
                throw new DatasetFileException($"{name} has an invalid shape ({shapeMatch.Groups[1].Value})");
            }

            shape.Add(dim);
        }

        long count = 1;
        foreach (var dim in shape)
        {
            count = dim == 0 ? 0 : count > long.MaxValue / Math.Max(dim, 1) ? long.MaxValue : count * dim;
        }

        long needed = count > long.MaxValue / size ? long.MaxValue : count * size;
        if (needed > limits.MaxDecompressedBytes || needed > Array.MaxLength)
        {
            throw new DatasetFileException($"{name} declares shape ({string.Join(", ", shape)}) = {DatasetReadLimits.Bytes(needed)}; the limit is {DatasetReadLimits.Bytes(limits.MaxDecompressedBytes)}");
        }

        long available = b.Length - (long)dataStart;
        if (available < needed)
        {
            throw new DatasetFileException($"{name} is truncated: shape ({string.Join(", ", shape)}) of '{d}' needs {needed} data bytes, found {available}");
        }

        var raw = b.AsSpan(dataStart, (int)needed).ToArray();
        if (bigEndian && size > 1)
        {
            for (int i = 0; i < raw.Length; i += size)
            {
                raw.AsSpan(i, size).Reverse();
            }
        }

        bool isFortran = fortran.Groups[1].Value == "True";
        long[] storedShape = isFortran ? Enumerable.Reverse(shape).ToArray() : shape.ToArray();
        var t = ToTensor(raw, kind, size, storedShape, name);
        if (isFortran && shape.Count > 1)
        {
            t = t.permute(Enumerable.Range(0, shape.Count).Reverse().Select(i => (long)i).ToArray()).contiguous();
        }

        return new NpyArray(kind, size, shape.ToArray(), t);
    }

    private static Tensor ToTensor(byte[] raw, char kind, int size, long[] shape, string name)
    {
        switch (kind, size)
        {
            case ('b', 1): return tensor(raw, shape, ScalarType.Byte).to_type(ScalarType.Bool);
            case ('u', 1): return tensor(raw, shape, ScalarType.Byte);
            case ('i', 1): return tensor(MemoryMarshal.Cast<byte, sbyte>(raw).ToArray(), shape, ScalarType.Int8);
            case ('i', 2): return tensor(MemoryMarshal.Cast<byte, short>(raw).ToArray(), shape, ScalarType.Int16);
            case ('i', 4): return tensor(MemoryMarshal.Cast<byte, int>(raw).ToArray(), shape, ScalarType.Int32);
            case ('i', 8): return tensor(MemoryMarshal.Cast<byte, long>(raw).ToArray(), shape, ScalarType.Int64);
            case ('u', 2): return tensor(MemoryMarshal.Cast<byte, ushort>(raw).ToArray().Select(v => (int)v).ToArray(), shape, ScalarType.Int32);
            case ('u', 4): return tensor(MemoryMarshal.Cast<byte, uint>(raw).ToArray().Select(v => (long)v).ToArray(), shape, ScalarType.Int64);
            case ('u', 8):
                var u = MemoryMarshal.Cast<byte, ulong>(raw).ToArray();
                if (u.Any(v => v > long.MaxValue))
                {
                    throw new DatasetFileException($"{name} holds uint64 values too large for any label or pixel");
                }

                return tensor(u.Select(v => (long)v).ToArray(), shape, ScalarType.Int64);
            case ('f', 2): return tensor(MemoryMarshal.Cast<byte, Half>(raw).ToArray().Select(v => (float)v).ToArray(), shape, ScalarType.Float32);
            case ('f', 4): return tensor(MemoryMarshal.Cast<byte, float>(raw).ToArray(), shape, ScalarType.Float32);
            case ('f', 8): return tensor(MemoryMarshal.Cast<byte, double>(raw).ToArray(), shape, ScalarType.Float64);
            default: throw new DatasetFileException($"{name}: unsupported dtype {kind}{size}");
        }
    }

    private static string Clip(string s) => s.Length > 200 ? s[..200] + "…" : s;

    [GeneratedRegex(@"'descr'\s*:\s*\[")]
    private static partial Regex DescrListRegex();

    [GeneratedRegex(@"'descr'\s*:\s*'([^']*)'")]
    private static partial Regex DescrRegex();

    [GeneratedRegex(@"'fortran_order'\s*:\s*(True|False)")]
    private static partial Regex FortranRegex();

    [GeneratedRegex(@"'shape'\s*:\s*\(([^)]*)\)")]
    private static partial Regex ShapeRegex();

    [GeneratedRegex(@"^([<>|=]?)([biuf])(\d+)$")]
    private static partial Regex DtypeRegex();
}
