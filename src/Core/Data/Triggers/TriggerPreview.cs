using static TorchSharp.torch;

namespace WebDefense.Core.Data.Triggers;

/// <summary>PNG renderings of samples with and without a trigger, for the UI.</summary>
public static class TriggerPreview
{
    /// <summary>Sample <paramref name="index"/> of <paramref name="data"/> with <paramref name="trigger"/> applied (none: the clean image), enlarged <paramref name="scale"/>× (nearest neighbour), as PNG bytes.</summary>
    public static byte[] RenderPng(ImageDataset data, int index, TriggerSpec? trigger, int scale = 1)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, data.Count);
        ArgumentOutOfRangeException.ThrowIfLessThan(scale, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(scale, 16);
        using var scope = NewDisposeScope();
        var x = data.Images.narrow(0, index, 1);
        if (trigger is not null)
        {
            x = trigger.ApplyTo(x);
        }

        var chw = x[0];
        if (scale > 1)
        {
            chw = chw.repeat_interleave(scale, 1).repeat_interleave(scale, 2);
        }

        return ImageCodec.EncodePng(chw);
    }
}
