using TorchSharp;
using static TorchSharp.torch;

namespace WebDefense.Core.Defenses.Blocks;

/// <summary>
/// Pruning BN channels in ascending order of a learned mask (RNP, ANP: "evaluate_by_number / by_threshold"):
/// the levels of the sweep and zeroing γ of the chosen channels (β kept, as the references do).
/// </summary>
public static class MaskPruning
{
    /// <summary>The number sweep prunes one channel at a time up to this many channels.</summary>
    public const int FineLevels = 200;

    /// <summary>Channels in ascending mask order, ties in model order.</summary>
    public static List<(BatchNormLayer Layer, int Channel, float Value)> Ascending(IReadOnlyList<(BatchNormLayer Layer, int Channel, float Value)> masks) =>
        masks.Select((m, i) => (m, i)).OrderBy(x => x.m.Value).ThenBy(x => x.i).Select(x => x.m).ToList();

    /// <summary>
    /// Sweep levels starting with the unpruned model. <c>number</c>: one channel at a time for the first
    /// <see cref="FineLevels"/> channels, then steps of ⌈channels/200⌉, up to <paramref name="max"/> of the channels; <c>threshold</c>: every channel with mask ≤ t
    /// for t = 0, step, …, max. A level's <see cref="PruningSweep.Level.Units"/> prunes the first Units channels of
    /// <paramref name="ascending"/>.
    /// </summary>
    public static List<PruningSweep.Level> Levels(IReadOnlyList<(BatchNormLayer Layer, int Channel, float Value)> ascending, string pruningBy, double max, double step)
    {
        var levels = new List<PruningSweep.Level> { new(0, -1) };
        if (pruningBy == "number")
        {
            // One channel at a time through the low-mask end the selection decides on, then steps of ⌈channels/200⌉.
            var stride = Math.Max(1, (int)Math.Ceiling(ascending.Count / 200.0));
            for (var n = 1; n <= (int)(max * ascending.Count); n += n < FineLevels ? 1 : stride)
            {
                levels.Add(new PruningSweep.Level(n, ascending[n - 1].Value));
            }
        }
        else
        {
            // t = i·step, rounded: summing the step drifts (0.05 ten times is 0.49999999999999994), which left masks of
            // exactly 0.5 out of the level reported as "threshold 0.5".
            for (var i = 0; i * step <= max + 1e-9; i++)
            {
                var t = Math.Round(i * step, 6);
                levels.Add(new PruningSweep.Level(ascending.Count(m => m.Value <= t), t));
            }
        }

        return levels;
    }

    /// <summary>Zeroes γ of the given channels in <paramref name="target"/>, matching BN layers by name.</summary>
    public static void ZeroGammas(ModelTopology target, IEnumerable<(BatchNormLayer Layer, int Channel, float Value)> channels)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        foreach (var (layer, channel, _) in channels)
        {
            target.BatchNorms.First(b => b.Name == layer.Name).Weight[channel].zero_();
        }
    }
}
