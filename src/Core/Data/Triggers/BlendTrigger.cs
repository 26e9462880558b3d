using static TorchSharp.torch;

namespace WebDefense.Core.Data.Triggers;

/// <summary>
/// Blended: x' = (1−α)·x + α·t, in float64, clipped and truncated to uint8. The pattern t is either
/// <see cref="Image"/> (base64 PNG/JPEG, resized bilinearly to the image size and rounded to uint8, as
/// BackdoorBench resizes its trigger image) or <see cref="Pattern"/> "noise": uniform random uint8 values
/// from <c>System.Random(Seed)</c>, filled in C×H×W order. BackdoorBench's default Hello Kitty image is
/// not shipped here; upload it as <see cref="Image"/> to reproduce that attack exactly.
/// </summary>
public sealed record BlendTrigger : TriggerSpec
{
    public double Alpha { get; init; } = 0.2;
    public string? Image { get; init; }

    /// <summary>"noise" (the only named pattern).</summary>
    public string? Pattern { get; init; }
    public int Seed { get; init; }

    public override void Validate()
    {
        if (!(Alpha > 0 && Alpha <= 1))
        {
            throw new InvalidTriggerException($"blend alpha must lie in (0, 1], got {Alpha}");
        }

        if ((Image is null) == (Pattern is null))
        {
            throw new InvalidTriggerException("a blend trigger needs exactly one of image (base64 PNG) or pattern (\"noise\")");
        }

        if (Pattern is not null && Pattern != "noise")
        {
            throw new InvalidTriggerException($"blend pattern '{Pattern}' is unknown; the only pattern is \"noise\"");
        }
    }

    protected override void ValidateShape(int channels, int height, int width)
    {
        if (Image is not null)
        {
            _ = ImageSize(Image, "the blend image");
        }
    }

    /// <summary>The uint8 1×C×H×W pattern t.</summary>
    public Tensor PatternTensor(int channels, int height, int width)
    {
        using var scope = NewDisposeScope();
        if (Image is not null)
        {
            return ImageCodec.Resize(DecodeImage(Image, channels, "the blend image"), height, width).MoveToOuterDisposeScope();
        }

        var bytes = new byte[channels * height * width];
        new Random(Seed).NextBytes(bytes);
        return tensor(bytes, [1, channels, height, width], ScalarType.Byte).MoveToOuterDisposeScope();
    }

    private protected override Tensor BuildPattern(int channels, int height, int width, Device device) =>
        PatternTensor(channels, height, width).to(device).to_type(ScalarType.Float64);

    private protected override Tensor Apply(Tensor batch, Tensor pattern) =>
        ClipTruncate(batch.to_type(ScalarType.Float64).mul(1 - Alpha).add(pattern.mul(Alpha)));
}
