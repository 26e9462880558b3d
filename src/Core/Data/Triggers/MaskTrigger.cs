using static TorchSharp.torch;

namespace WebDefense.Core.Data.Triggers;

/// <summary>
/// A mask-and-pattern trigger, the form trigger inversion (Neural Cleanse) reconstructs:
/// x' = (1 − m)·x + m·p per pixel, with the mask m (one value per pixel, shared by the channels) and the pattern p
/// given as base64 PNGs of the image's size: <see cref="Mask"/> greyscale (0 = untouched, 255 = replaced) and
/// <see cref="Pattern"/> with the image's channels. Float math, clipped and truncated to uint8 like the other triggers.
/// A scan's result carries its reconstructed trigger in this form, so it can be given to any run as <c>"trigger"</c>.
/// </summary>
public sealed record MaskTrigger : TriggerSpec
{
    public required string Mask { get; init; }
    public required string Pattern { get; init; }

    /// <summary>Builds the spec from a float mask (1×H×W or H×W, values in [0,1]) and pattern (C×H×W, values in [0,1]).</summary>
    public static MaskTrigger FromTensors(Tensor mask, Tensor pattern)
    {
        using var scope = NewDisposeScope();
        var m = mask.detach().cpu().reshape(1, mask.shape[^2], mask.shape[^1]);
        var p = pattern.detach().cpu();
        return new MaskTrigger
        {
            Mask = Convert.ToBase64String(ImageCodec.EncodePng(ToBytes(m))),
            Pattern = Convert.ToBase64String(ImageCodec.EncodePng(ToBytes(p))),
        };

        static Tensor ToBytes(Tensor unit) => unit.mul(255).round().clamp(0, 255).to_type(ScalarType.Byte);
    }

    public override void Validate()
    {
        if (string.IsNullOrEmpty(Mask) || string.IsNullOrEmpty(Pattern))
        {
            throw new InvalidTriggerException("a mask trigger needs both mask and pattern (base64 PNGs)");
        }
    }

    protected override void ValidateShape(int channels, int height, int width)
    {
        foreach (var (image, what) in new[] { (Mask, "the trigger mask"), (Pattern, "the trigger pattern") })
        {
            var (h, w) = ImageSize(image, what);
            if (h != height || w != width)
            {
                throw new InvalidTriggerException($"{what} is {w}×{h}, the images are {width}×{height}");
            }
        }
    }

    /// <summary>The mask as uint8 1×1×H×W and the pattern as uint8 1×C×H×W.</summary>
    public (Tensor Mask, Tensor Pattern) Tensors(int channels)
    {
        using var scope = NewDisposeScope();
        var mask = DecodeImage(Mask, 1, "the trigger mask");
        var pattern = DecodeImage(Pattern, channels, "the trigger pattern");
        return (mask.MoveToOuterDisposeScope(), pattern.MoveToOuterDisposeScope());
    }

    /// <summary>L1 norm of the mask in pixels (the sum of its values in [0,1]).</summary>
    public double MaskNorm()
    {
        var (mask, pattern) = Tensors(1);
        using (mask)
        using (pattern)
        {
            return mask.to_type(ScalarType.Float64).sum().item<double>() / 255.0;
        }
    }

    private protected override Tensor BuildPattern(int channels, int height, int width, Device device)
    {
        var (mask, pattern) = Tensors(channels);
        using (mask)
        using (pattern)
        {
            // Channel 0 is the mask in [0,1], channels 1.. the pattern in pixel values.
            return cat([mask.to_type(ScalarType.Float64).div(255.0), pattern.to_type(ScalarType.Float64)], 1).to(device);
        }
    }

    private protected override Tensor Apply(Tensor batch, Tensor pattern)
    {
        var m = pattern.narrow(1, 0, 1);
        var p = pattern.narrow(1, 1, pattern.shape[1] - 1);
        return ClipTruncate(batch.to_type(ScalarType.Float64).mul(m.neg().add(1)).add(p.mul(m)));
    }
}
