using System.IO.Compression;
using System.Text;
using static TorchSharp.torch;

namespace WebDefense.Core.Data;

/// <summary>
/// Writes a dataset as a NumPy <c>.npz</c> (what <see cref="NumpyReader"/> reads): <c>x</c> uint8 N×C×H×W and
/// <c>y</c> int64 N, plus, for a poisoned training set whose truth is known, <c>poisoned</c> bool N
/// (see <see cref="NumpyReader.ReadPoisonFlags(byte[], string, DatasetReadOptions?, int?)"/>).
/// </summary>
public static class NpzWriter
{
    public static void Write(ImageDataset data, string path, IReadOnlyList<bool>? poisoned = null)
    {
        using var file = File.Create(path);
        Write(data, file, poisoned);
    }

    public static void Write(ImageDataset data, Stream output, IReadOnlyList<bool>? poisoned = null)
    {
        if (poisoned is not null && poisoned.Count != data.Count)
        {
            throw new ArgumentException($"{poisoned.Count} poison flags for {data.Count} samples", nameof(poisoned));
        }

        using var scope = NewDisposeScope();
        var images = data.Images.to_type(ScalarType.Byte).contiguous().data<byte>().ToArray();
        var labels = data.Labels.to_type(ScalarType.Int64).contiguous().data<long>().ToArray();
        using var zip = new ZipArchive(output, ZipArchiveMode.Create, leaveOpen: true);
        WriteArray(zip, "x.npy", "|u1", [data.Count, data.Channels, data.Height, data.Width], images);
        var labelBytes = new byte[labels.Length * 8];
        Buffer.BlockCopy(labels, 0, labelBytes, 0, labelBytes.Length);
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("big-endian hosts are not supported");
        WriteArray(zip, "y.npy", "<i8", [data.Count], labelBytes);
        if (poisoned is not null)
        {
            WriteArray(zip, NumpyReader.PoisonFlagNames[0] + ".npy", "|b1", [data.Count], poisoned.Select(f => f ? (byte)1 : (byte)0).ToArray());
        }
    }

    private static void WriteArray(ZipArchive zip, string name, string dtype, long[] shape, byte[] payload)
    {
        var shapeText = shape.Length == 1 ? $"({shape[0]},)" : "(" + string.Join(", ", shape) + ")";
        var header = $"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shapeText}, }}";
        var total = 10 + header.Length + 1;
        header = header + new string(' ', (64 - total % 64) % 64) + "\n";
        var entry = zip.CreateEntry(name, CompressionLevel.Fastest);
        using var s = entry.Open();
        s.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0]);
        var h = Encoding.ASCII.GetBytes(header);
        s.Write(BitConverter.GetBytes((ushort)h.Length));
        s.Write(h);
        s.Write(payload);
    }
}
