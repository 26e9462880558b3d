using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using static TorchSharp.torch;

namespace WebDefense.Core.Models.Serialization;

/// <summary>
/// Reads and writes huggingface safetensors files: u64 LE header length N, an N-byte UTF-8 JSON header
/// <c>{name: {dtype, shape, data_offsets: [begin, end)}, "__metadata__": {…}}</c>, then the row-major LE data.
/// </summary>
public static class Safetensors
{
    private static readonly Dictionary<string, ScalarType> DTypes = new(StringComparer.Ordinal)
    {
        ["F64"] = ScalarType.Float64, ["F32"] = ScalarType.Float32, ["F16"] = ScalarType.Float16,
        ["BF16"] = ScalarType.BFloat16, ["I64"] = ScalarType.Int64, ["I32"] = ScalarType.Int32,
        ["I16"] = ScalarType.Int16, ["I8"] = ScalarType.Int8, ["U8"] = ScalarType.Byte, ["BOOL"] = ScalarType.Bool,
    };

    public static StateDict Read(Stream stream, ModelReadLimits? limits = null)
    {
        limits ??= ModelReadLimits.Default;
        var lenBytes = new byte[8];
        if (stream.ReadAtLeast(lenBytes, 8, throwOnEndOfStream: false) != 8)
        {
            throw new ModelFileException("safetensors file is shorter than its 8-byte header length");
        }

        var headerLen = BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
        if (headerLen > (ulong)limits.MaxSafetensorsHeaderBytes)
        {
            throw new ModelFileException($"safetensors header length {headerLen} is more than the limit of {limits.MaxSafetensorsHeaderBytes}");
        }

        var header = new byte[headerLen];
        if (stream.ReadAtLeast(header, header.Length, throwOnEndOfStream: false) != header.Length)
        {
            throw new ModelFileException($"safetensors header length {headerLen} is beyond the end of the file");
        }

        var specs = ParseHeader(header, limits);
        long bufferLen = specs.Count == 0 ? 0 : specs.Max(s => s.End);
        if (bufferLen > limits.MaxTotalTensorBytes || bufferLen > Array.MaxLength)
        {
            throw new ModelFileException($"tensor data is more than the limit of {limits.MaxTotalTensorBytes} bytes");
        }

        var buffer = new byte[bufferLen];
        var got = stream.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
        if (got != buffer.Length)
        {
            throw new ModelFileException($"safetensors data offsets reach byte {bufferLen} but the data is {got} bytes");
        }

        // Overlap check on the sorted ranges (empty ranges cannot overlap anything).
        var sorted = specs.Where(s => s.End > s.Begin).OrderBy(s => s.Begin).ToList();
        for (var i = 1; i < sorted.Count; i++)
        {
            if (sorted[i].Begin < sorted[i - 1].End)
            {
                throw new ModelFileException($"safetensors tensors '{sorted[i - 1].Name}' and '{sorted[i].Name}' have overlapping data ranges");
            }
        }

        var result = new StateDict();
        try
        {
            using var scope = NewDisposeScope();
            foreach (var s in specs)
            {
                result.Add(s.Name, TensorDTypes.FromBytes(buffer.AsSpan((int)s.Begin, (int)(s.End - s.Begin)), s.DType, s.Shape));
            }
        }
        catch
        {
            result.Dispose();
            throw;
        }

        return result;
    }

    /// <summary>Writes the tensors with sorted keys and the header padded with spaces to 8-byte alignment.</summary>
    public static void Write(StateDict stateDict, Stream stream, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var names = stateDict.Keys.OrderBy(k => k, StringComparer.Ordinal).ToList();
        var blobs = names.Select(n => TensorDTypes.ToBytes(stateDict[n])).ToList();
        var json = new MemoryStream();
        using (var w = new Utf8JsonWriter(json))
        {
            w.WriteStartObject();
            if (metadata is not null)
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata)
                {
                    w.WriteString(k, v);
                }

                w.WriteEndObject();
            }

            long offset = 0;
            for (var i = 0; i < names.Count; i++)
            {
                var t = stateDict[names[i]];
                w.WriteStartObject(names[i]);
                w.WriteString("dtype", DTypes.FirstOrDefault(kv => kv.Value == t.dtype).Key
                    ?? throw new ArgumentException($"tensor '{names[i]}' has dtype {t.dtype}, which safetensors files here cannot hold"));
                w.WriteStartArray("shape");
                foreach (var d in t.shape)
                {
                    w.WriteNumberValue(d);
                }

                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + blobs[i].Length);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += blobs[i].Length;
            }

            w.WriteEndObject();
        }

        while (json.Length % 8 != 0)
        {
            json.WriteByte((byte)' ');
        }

        var len = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)json.Length);
        stream.Write(len);
        stream.Write(json.GetBuffer(), 0, (int)json.Length);
        foreach (var b in blobs)
        {
            stream.Write(b);
        }
    }

    private sealed record Spec(string Name, ScalarType DType, long[] Shape, long Begin, long End);

    private static List<Spec> ParseHeader(byte[] header, ModelReadLimits limits)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header, new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (JsonException e)
        {
            throw new ModelFileException($"safetensors header is not valid JSON: {e.Message}", e);
        }

        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new ModelFileException("safetensors header is not a JSON object");
            }

            var seen = new HashSet<string>(StringComparer.Ordinal);
            var specs = new List<Spec>();
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (!seen.Add(p.Name))
                {
                    throw new ModelFileException($"safetensors header has the key '{p.Name}' twice");
                }

                if (p.Name == "__metadata__")
                {
                    continue;
                }

                if (specs.Count >= limits.MaxTensorCount)
                {
                    throw new ModelFileException($"safetensors file has more than {limits.MaxTensorCount} tensors");
                }

                specs.Add(ParseSpec(p, limits));
            }

            return specs;
        }
    }

    private static Spec ParseSpec(JsonProperty p, ModelReadLimits limits)
    {
        var e = p.Value;
        if (e.ValueKind != JsonValueKind.Object
            || !e.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String
            || !e.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array
            || !e.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
        {
            throw new ModelFileException($"safetensors entry '{p.Name}' lacks dtype, shape or data_offsets [begin, end]");
        }

        var dtypeName = dt.GetString()!;
        if (!DTypes.TryGetValue(dtypeName, out var dtype))
        {
            throw new ModelFileException(
                $"safetensors tensor '{p.Name}' has dtype '{dtypeName}', which is not supported (supported: {string.Join(" ", DTypes.Keys)})");
        }

        if (sh.GetArrayLength() > limits.MaxTensorRank)
        {
            throw new ModelFileException($"safetensors tensor '{p.Name}' has more than {limits.MaxTensorRank} dimensions");
        }

        var shape = sh.EnumerateArray().Select(d => d.TryGetInt64(out var v) && v >= 0
            ? v
            : throw new ModelFileException($"safetensors tensor '{p.Name}' has an invalid dimension {d}")).ToArray();
        var o = off.EnumerateArray().Select(d => d.TryGetInt64(out var v) && v >= 0
            ? v
            : throw new ModelFileException($"safetensors tensor '{p.Name}' has an invalid data offset {d}")).ToArray();
        var numel = TensorDTypes.CheckedNumel(shape, $"safetensors tensor '{p.Name}'");
        var size = TensorDTypes.ElementSize(dtype);
        if (o[1] < o[0] || numel > long.MaxValue / size || o[1] - o[0] != numel * size)
        {
            throw new ModelFileException(
                $"safetensors tensor '{p.Name}' has data_offsets [{o[0]}, {o[1]}] but shape [{string.Join(", ", shape)}] × {dtypeName} needs {numel * size} bytes");
        }

        if (o[1] > limits.MaxTotalTensorBytes)
        {
            throw new ModelFileException($"safetensors tensor '{p.Name}' data offset {o[1]} is more than the limit of {limits.MaxTotalTensorBytes} bytes");
        }

        return new Spec(p.Name, dtype, shape, o[0], o[1]);
    }
}
