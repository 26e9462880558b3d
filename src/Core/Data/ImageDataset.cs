using TorchSharp;
using static TorchSharp.torch;

namespace WebDefense.Core.Data;

/// <summary>
/// Labelled images as raw pixels: <see cref="Images"/> is uint8 N×C×H×W (0–255, RGB or grey) and
/// <see cref="Labels"/> int64 N. Triggers are applied to these raw pixels (as BackdoorBench does, with
/// truncation to uint8); normalisation happens per batch through <see cref="InputSpec"/>. Owns its tensors.
/// </summary>
public sealed class ImageDataset : IDisposable
{
    public ImageDataset(Tensor images, Tensor labels)
    {
        if (images.dtype != ScalarType.Byte || images.dim() != 4)
        {
            throw new DatasetFileException($"images must be uint8 N×C×H×W, got {images.dtype} with shape [{string.Join(',', images.shape)}]");
        }

        if (labels.dim() != 1 || labels.shape[0] != images.shape[0])
        {
            throw new DatasetFileException($"expected {images.shape[0]} labels, got shape [{string.Join(',', labels.shape)}]");
        }

        Images = images.contiguous().DetachFromDisposeScope();
        Labels = labels.to_type(ScalarType.Int64).contiguous().DetachFromDisposeScope();
    }

    public Tensor Images { get; }
    public Tensor Labels { get; }
    public int Count => (int)Images.shape[0];
    public int Channels => (int)Images.shape[1];
    public int Height => (int)Images.shape[2];
    public int Width => (int)Images.shape[3];

    /// <summary>The distinct labels present, ascending.</summary>
    public long[] Classes()
    {
        using var scope = NewDisposeScope();
        return Labels.unique().Item1.data<long>().ToArray();
    }

    /// <summary>A new dataset holding copies of the given rows, in the given order.</summary>
    public ImageDataset Subset(IReadOnlyList<long> indices)
    {
        using var scope = NewDisposeScope();
        using var idx = tensor(indices.ToArray(), ScalarType.Int64);
        return new ImageDataset(Images.index_select(0, idx).MoveToOuterDisposeScope(), Labels.index_select(0, idx).MoveToOuterDisposeScope());
    }

    public void Dispose()
    {
        Images.Dispose();
        Labels.Dispose();
    }
}
