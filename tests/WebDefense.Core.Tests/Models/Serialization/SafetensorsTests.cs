using System.Buffers.Binary;
using System.Text;
using WebDefense.Core.Models;
using WebDefense.Core.Models.Serialization;
using static WebDefense.Core.Tests.Models.Serialization.SerializationTestHelpers;

namespace WebDefense.Core.Tests.Models.Serialization;

public sealed class SafetensorsTests
{
    private static byte[] File(string header, byte[] data, ulong? declaredLength = null)
    {
        var h = Encoding.UTF8.GetBytes(header);
        var result = new byte[8 + h.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(result, declaredLength ?? (ulong)h.Length);
        h.CopyTo(result, 8);
        data.CopyTo(result, 8 + h.Length);
        return result;
    }

    private static ModelFileException Rejects(byte[] file) =>
        Assert.Throws<ModelFileException>(() => Safetensors.Read(new MemoryStream(file)).Dispose());

    [Fact]
    public void Reads_the_python_written_file_exactly()
    {
        using var sd = ReadWith(s => Safetensors.Read(s), "mixed.safetensors");
        AssertMatchesExpected(sd, "mixed.safetensors");
    }

    [Fact]
    public void Round_trip_and_writer_layout()
    {
        using var sd = MakeKnownStateDict();
        var ms = new MemoryStream();
        Safetensors.Write(sd, ms, new Dictionary<string, string> { ["format"] = "pt" });
        var bytes = ms.ToArray();
        var n = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0, (8 + n) % 8);
        using var back = Safetensors.Read(new MemoryStream(bytes));
        Assert.Equal(sd.Keys.OrderBy(k => k, StringComparer.Ordinal), back.Keys);
        foreach (var k in sd.Keys)
        {
            Assert.True(sd[k].eq(back[k]).all().item<bool>(), k);
            Assert.Equal(sd[k].dtype, back[k].dtype);
            Assert.Equal(sd[k].shape, back[k].shape);
        }
    }

    [Fact]
    public void Zero_rank_and_empty_tensors_are_allowed()
    {
        using var sd = Safetensors.Read(new MemoryStream(File(
            """{"s":{"dtype":"I64","shape":[],"data_offsets":[0,8]},"e":{"dtype":"F32","shape":[0,4],"data_offsets":[8,8]}}""",
            BitConverter.GetBytes(42L))));
        Assert.Equal(42L, sd["s"].item<long>());
        Assert.Equal([0L, 4L], sd["e"].shape);
    }

    [Fact]
    public void Overlapping_ranges_are_refused() => Assert.Contains("overlapping", Rejects(File(
        """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""",
        new byte[12])).Message);

    [Fact]
    public void Offsets_beyond_the_data_are_refused() => Assert.Contains("reach byte 16", Rejects(File(
        """{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}""", new byte[8])).Message);

    [Fact]
    public void Header_length_beyond_the_file_is_refused() => Assert.Contains("beyond the end", Rejects(File(
        """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", new byte[4], declaredLength: 5000)).Message);

    [Fact]
    public void Huge_header_length_is_refused() => Assert.Contains("limit", Rejects(File("{}", [], declaredLength: 1UL << 40)).Message);

    [Fact]
    public void Unsupported_dtype_is_refused() => Assert.Contains("'F8_E4M3'", Rejects(File(
        """{"a":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}""", new byte[1])).Message);

    [Fact]
    public void Duplicate_keys_are_refused() => Assert.Contains("'a' twice", Rejects(File(
        """{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}""",
        new byte[2])).Message);

    [Fact]
    public void Length_not_matching_shape_is_refused() => Assert.Contains("needs 8 bytes", Rejects(File(
        """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}""", new byte[4])).Message);
}
