using System.IO.Compression;
using StbImageSharp;
using WebDefense.Core.Models;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace WebDefense.Core.Tests.Models;

/// <summary>
/// verazuo/badnets-pytorch's MNIST BadNet (checkpoints/badnet-MNIST.pth), scripted with its weights by the
/// fixture script. The repo normalises with mean 0.5 / std 0.5, and poisons by pasting trigger_white.png,
/// resized to 5×5, at the bottom-right corner (x = y = 28 − 5); its target label is 1.
/// </summary>
public class ThirdPartyBadNetTests(ITestOutputHelper output)
{
    private const int TriggerSize = 5;
    private const int TargetLabel = 1;

    [Fact]
    public void CleanAccuracyAndAttackSuccessRate()
    {
        var shared = Fixtures.SharedDir();
        Assert.NotNull(shared);
        var mnist = Path.Combine(shared, "data", "mnist-test");
        var (images, n, h, w) = ReadIdxImages(Path.Combine(mnist, "t10k-images-idx3-ubyte.gz"));
        var labels = ReadIdxLabels(Path.Combine(mnist, "t10k-labels-idx1-ubyte.gz"));
        Assert.Equal(n, labels.Length);

        var trigger = LoadTrigger(Path.Combine(shared, "data", "models", "badnets-pytorch-verazuo", "trigger_white.png"));
        var poisoned = (byte[])images.Clone();
        for (var i = 0; i < n; i++)
        {
            for (var y = 0; y < TriggerSize; y++)
            {
                for (var x = 0; x < TriggerSize; x++)
                {
                    poisoned[(i * h + (h - TriggerSize + y)) * w + (w - TriggerSize + x)] = trigger[y * TriggerSize + x];
                }
            }
        }

        using var model = TorchScriptModel.Load(Fixtures.Resolve("badnet_mnist_arch.ts.pt"));
        var clean = Predict(model, images, n, h, w);
        var bad = Predict(model, poisoned, n, h, w);
        var acc = Enumerable.Range(0, n).Count(i => clean[i] == labels[i]) / (double)n;
        var nonTarget = Enumerable.Range(0, n).Where(i => labels[i] != TargetLabel).ToList();
        var asr = nonTarget.Count(i => bad[i] == TargetLabel) / (double)nonTarget.Count;
        output.WriteLine($"BadNet MNIST: clean ACC {acc:P2} ({n} images), ASR {asr:P2} on {nonTarget.Count} non-target images");
        Assert.True(acc >= 0.95, $"clean accuracy {acc}");
        Assert.True(asr >= 0.9, $"attack success rate {asr}");
    }

    private static long[] Predict(nn.IModule<Tensor, Tensor> model, byte[] pixels, int n, int h, int w)
    {
        var result = new long[n];
        using var noGrad = no_grad();
        const int batch = 1000;
        for (var start = 0; start < n; start += batch)
        {
            using var scope = NewDisposeScope();
            var count = Math.Min(batch, n - start);
            var x = tensor(pixels.AsSpan(start * h * w, count * h * w).ToArray(), [count, 1, h, w], ScalarType.Byte)
                .to_type(ScalarType.Float32).div(255f).sub(0.5f).div(0.5f);
            model.call(x).argmax(1).data<long>().CopyTo(result, start);
        }

        return result;
    }

    /// <summary>PIL in the repo: RGB → resize(5×5) → paste onto an L image (ITU-R 601 luma). Nearest resize here.</summary>
    private static byte[] LoadTrigger(string path)
    {
        var img = ImageResult.FromMemory(File.ReadAllBytes(path), ColorComponents.RedGreenBlue);
        var result = new byte[TriggerSize * TriggerSize];
        for (var y = 0; y < TriggerSize; y++)
        {
            for (var x = 0; x < TriggerSize; x++)
            {
                var sx = (int)((x + 0.5) * img.Width / TriggerSize);
                var sy = (int)((y + 0.5) * img.Height / TriggerSize);
                var o = (sy * img.Width + sx) * 3;
                result[y * TriggerSize + x] = (byte)((img.Data[o] * 299 + img.Data[o + 1] * 587 + img.Data[o + 2] * 114 + 500) / 1000);
            }
        }

        return result;
    }

    private static byte[] ReadGz(string path)
    {
        using var gz = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
        using var ms = new MemoryStream();
        gz.CopyTo(ms);
        return ms.ToArray();
    }

    private static int BigEndian(byte[] b, int offset) => (b[offset] << 24) | (b[offset + 1] << 16) | (b[offset + 2] << 8) | b[offset + 3];

    private static (byte[] Pixels, int N, int H, int W) ReadIdxImages(string path)
    {
        var b = ReadGz(path);
        Assert.Equal(0x00000803, BigEndian(b, 0));
        int n = BigEndian(b, 4), h = BigEndian(b, 8), w = BigEndian(b, 12);
        Assert.Equal(16 + (long)n * h * w, b.Length);
        return (b[16..], n, h, w);
    }

    private static byte[] ReadIdxLabels(string path)
    {
        var b = ReadGz(path);
        Assert.Equal(0x00000801, BigEndian(b, 0));
        Assert.Equal(8 + BigEndian(b, 4), b.Length);
        return b[8..];
    }
}
