namespace WebDefense.Core.Data;

/// <summary>How to interpret an uploaded dataset. Every property is optional.</summary>
public sealed record DatasetReadOptions
{
    /// <summary>Layout of 4-D numpy images: true = N×H×W×C, false = N×C×H×W, null = detect (see <see cref="NumpyReader"/>).</summary>
    public bool? ChannelsLast { get; init; }

    /// <summary>Channels to decode PNG/JPEG images to: 1 (grey) or 3 (RGB). Default 3.</summary>
    public int Channels { get; init; } = 3;

    /// <summary>Resize every PNG/JPEG image to this size (bilinear); null = all images must already have the same size.</summary>
    public (int Height, int Width)? TargetSize { get; init; }

    /// <summary>When set (e.g. the model's class count), every label must lie in [0, NumClasses).</summary>
    public int? NumClasses { get; init; }

    public DatasetReadLimits Limits { get; init; } = DatasetReadLimits.Default;

    public static DatasetReadOptions Default { get; } = new();
}
