using TorchSharp;
using static TorchSharp.torch;

namespace WebDefense.Core.Training;

/// <summary>
/// Training-time augmentation on uint8 N×C×H×W batches, as torchvision's RandomCrop(size, padding) and
/// RandomHorizontalFlip(0.5). Random draws come from the caller's <see cref="Random"/>, so a seed fixes them.
/// </summary>
public sealed record Augmentation(int CropPadding, bool HorizontalFlip)
{
    public static Augmentation None { get; } = new(0, false);

    /// <summary>BackdoorBench's CIFAR-10 recipe: RandomCrop(32, padding 4) + RandomHorizontalFlip.</summary>
    public static Augmentation Cifar { get; } = new(4, true);

    /// <summary>
    /// The defenses' default for an input: colour images get the CIFAR recipe (crop, padding 4, and flip);
    /// grey images (digits, clothing) get RandomCrop with padding 2 and no flip.
    /// </summary>
    public static Augmentation ForInput(Data.InputSpec input) => input.Channels == 3 ? Cifar : new Augmentation(2, false);

    public bool IsIdentity => CropPadding == 0 && !HorizontalFlip;

    public Tensor Apply(Tensor pixels, Random random)
    {
        if (IsIdentity)
        {
            return pixels.alias();
        }

        using var scope = NewDisposeScope();
        var (n, h, w) = ((int)pixels.shape[0], pixels.shape[2], pixels.shape[3]);
        var padded = CropPadding > 0 ? nn.functional.pad(pixels, (CropPadding, CropPadding, CropPadding, CropPadding)) : pixels;
        var samples = new Tensor[n];
        for (var i = 0; i < n; i++)
        {
            var sample = padded[i];
            if (CropPadding > 0)
            {
                var top = random.Next(2 * CropPadding + 1);
                var left = random.Next(2 * CropPadding + 1);
                sample = sample.narrow(1, top, h).narrow(2, left, w);
            }

            if (HorizontalFlip && random.NextDouble() < 0.5)
            {
                sample = sample.flip(2);
            }

            samples[i] = sample;
        }

        return stack(samples).MoveToOuterDisposeScope();
    }
}
