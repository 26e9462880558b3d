using static TorchSharp.torch;

namespace WebDefense.Core.Data.Triggers;

/// <summary>
/// SIG: x' = clip(x + p, 0, 255) truncated to uint8, with p(i, j) = Δ·sin(2π·j·f/m) for every row i and
/// channel, j the column and m the image width; p is stored as float32 (as BackdoorBench's pattern array)
/// and added in float64. Defaults Δ = 40, f = 6.
/// </summary>
public sealed record SigTrigger : TriggerSpec
{
    public double Delta { get; init; } = 40;
    public double Frequency { get; init; } = 6;

    public override void Validate()
    {
        if (!(Delta > 0 && Delta <= 255))
        {
            throw new InvalidTriggerException($"sig delta must lie in (0, 255], got {Delta}");
        }

        if (!(Frequency > 0 && double.IsFinite(Frequency)))
        {
            throw new InvalidTriggerException($"sig frequency must be positive, got {Frequency}");
        }
    }

    protected override void ValidateShape(int channels, int height, int width)
    {
    }

    /// <summary>The signal value for column <paramref name="j"/> of an image <paramref name="width"/> wide.</summary>
    public double Signal(int j, int width) => (float)(Delta * Math.Sin(2 * Math.PI * j * Frequency / width));

    private protected override Tensor BuildPattern(int channels, int height, int width, Device device)
    {
        var row = Enumerable.Range(0, width).Select(j => Signal(j, width)).ToArray();
        return tensor(row, [1, 1, 1, width], ScalarType.Float64).to(device);
    }

    private protected override Tensor Apply(Tensor batch, Tensor pattern) =>
        ClipTruncate(batch.to_type(ScalarType.Float64).add(pattern));
}
