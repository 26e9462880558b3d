using static TorchSharp.torch;

namespace WebDefense.Core.Defenses.Blocks;

/// <summary>
/// Random square patch masks (AdvrBD's m): per sample, a (2r+1)×(2r+1) window of ones, all other pixels zero, placed
/// uniformly at random so that it lies wholly inside the image (so every mask has the same area); a window larger than
/// the image covers it all. Positions come from the caller's <see cref="Random"/>, so a seed fixes them.
/// </summary>
public static class PatchMask
{
    /// <summary>Side of the window for a patch radius r: 2r + 1 pixels.</summary>
    public static int Side(int radius) => 2 * radius + 1;

    /// <summary>float32 N×1×H×W masks (broadcast over the channels): 1 inside each sample's window, 0 outside.</summary>
    public static Tensor Random(int count, int height, int width, int radius, Random random)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(radius);
        var (sh, sw) = (Math.Min(Side(radius), height), Math.Min(Side(radius), width));
        var values = new float[(long)count * height * width];
        for (var n = 0; n < count; n++)
        {
            var top = random.Next(height - sh + 1);
            var left = random.Next(width - sw + 1);
            var offset = (long)n * height * width;
            for (var y = top; y < top + sh; y++)
            {
                Array.Fill(values, 1f, (int)(offset + (long)y * width + left), sw);
            }
        }

        return tensor(values, [count, 1, height, width]);
    }
}
