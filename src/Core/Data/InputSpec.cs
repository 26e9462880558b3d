using TorchSharp;
using static TorchSharp.torch;

namespace WebDefense.Core.Data;

/// <summary>
/// What a model expects as input: channels, height, width and per-channel normalisation. Pixels are
/// scaled to [0,1] and then normalised: x' = (x/255 − mean) / std, as torchvision's ToTensor + Normalize.
/// </summary>
public sealed record InputSpec(int Channels, int Height, int Width, float[] Mean, float[] Std)
{
    public static InputSpec Create(int channels, int height, int width, float[]? mean = null, float[]? std = null)
    {
        var spec = new InputSpec(channels, height, width, mean ?? Enumerable.Repeat(0f, channels).ToArray(), std ?? Enumerable.Repeat(1f, channels).ToArray());
        spec.Validate();
        return spec;
    }

    /// <summary>BackdoorBench's CIFAR-10 normalisation (reference-algorithms §0).</summary>
    public static InputSpec Cifar10 => Create(3, 32, 32, [0.4914f, 0.4822f, 0.4465f], [0.247f, 0.243f, 0.261f]);

    /// <summary>28×28 grey images, pixels scaled to [0,1] (MNIST, Fashion-MNIST).</summary>
    public static InputSpec Grey28 => Create(1, 28, 28);

    public void Validate()
    {
        if (Channels is < 1 or > 4 || Height is < 1 or > 4096 || Width is < 1 or > 4096)
        {
            throw new ArgumentException($"input shape {Channels}×{Height}×{Width} is out of range");
        }

        if (Mean.Length != Channels || Std.Length != Channels)
        {
            throw new ArgumentException($"mean and std need {Channels} values each (one per channel), got {Mean.Length} and {Std.Length}");
        }

        if (Std.Any(s => !(s > 0)) || Mean.Any(m => !float.IsFinite(m)))
        {
            throw new ArgumentException("std values must be positive and mean values finite");
        }
    }

    /// <summary>Checks that a dataset's images have this shape; the message names both shapes.</summary>
    public void EnsureMatches(ImageDataset data, string what = "dataset")
    {
        if (data.Channels != Channels || data.Height != Height || data.Width != Width)
        {
            throw new DatasetFileException(
                $"{what} has images of {data.Channels}×{data.Height}×{data.Width} (C×H×W) but the model expects {Channels}×{Height}×{Width}");
        }
    }

    /// <summary>uint8 N×C×H×W → normalised float32 on <paramref name="device"/>.</summary>
    public Tensor Normalize(Tensor pixels, Device? device = null)
    {
        using var scope = NewDisposeScope();
        var x = pixels.to(device ?? CPU).to_type(ScalarType.Float32).div_(255f);
        using var mean = tensor(Mean, device: x.device).view(1, Channels, 1, 1);
        using var std = tensor(Std, device: x.device).view(1, Channels, 1, 1);
        return x.sub_(mean).div_(std).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Float pixels already scaled to [0,1] → normalised, out of place, so gradients flow back to the pixels
    /// (adversarial perturbations are made in this pixel space).
    /// </summary>
    public Tensor NormalizeUnit(Tensor unitPixels)
    {
        using var scope = NewDisposeScope();
        var mean = tensor(Mean, device: unitPixels.device).view(1, Channels, 1, 1);
        var std = tensor(Std, device: unitPixels.device).view(1, Channels, 1, 1);
        return unitPixels.sub(mean).div(std).MoveToOuterDisposeScope();
    }
}
