using System.IO.Compression;
using System.Text;

namespace WebDefense.Browser.Tests;

/// <summary>
/// Writes a small clean set as a NumPy .npz (x: uint8 N×28×28, y: int64 N) from Debian's Fashion-MNIST training IDX
/// files, the way a user would export one with numpy.savez: the file the browser test uploads.
/// </summary>
public static class FashionMnistSample
{
    private const string Root = "/usr/share/datasets/fashion-mnist";

    public static string WriteCleanSet(string directory, int perClass)
    {
        var images = Gunzip(Path.Combine(Root, "train-images-idx3-ubyte.gz"));
        var labels = Gunzip(Path.Combine(Root, "train-labels-idx1-ubyte.gz"));
        const int pixels = 28 * 28;
        var count = new int[10];
        var x = new List<byte>();
        var y = new List<long>();
        // The last training images (not the start, which the demo's clean set takes), perClass of each class.
        for (var i = 59_999; i >= 0 && y.Count < perClass * 10; i--)
        {
            int label = labels[8 + i];
            if (count[label] == perClass) continue;
            count[label]++;
            x.AddRange(images.AsSpan(16 + i * pixels, pixels).ToArray());
            y.Add(label);
        }

        var path = Path.Combine(directory, $"fmnist-clean-{perClass}.npz");
        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
        Write(zip, "x.npy", "|u1", $"({y.Count}, 28, 28)", x.ToArray());
        Write(zip, "y.npy", "<i8", $"({y.Count},)", y.SelectMany(BitConverter.GetBytes).ToArray());
        return path;
    }

    private static byte[] Gunzip(string path)
    {
        using var gz = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
        using var buffer = new MemoryStream();
        gz.CopyTo(buffer);
        return buffer.ToArray();
    }

    private static void Write(ZipArchive zip, string name, string dtype, string shape, byte[] data)
    {
        var header = $"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape}, }}";
        var total = 10 + header.Length + 1;
        header = header.PadRight(header.Length + (64 - total % 64) % 64) + "\n";
        using var stream = zip.CreateEntry(name).Open();
        stream.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0]);
        stream.Write(BitConverter.GetBytes((ushort)header.Length));
        stream.Write(Encoding.ASCII.GetBytes(header));
        stream.Write(data);
    }
}
