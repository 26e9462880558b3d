using static TorchSharp.torch;

namespace WebDefense.Core.Data.Triggers;

/// <summary>
/// BackdoorBench's bd-test set for all-to-one attacks (reference-algorithms §1): the samples whose true
/// label is not the target, with the trigger applied. <see cref="Data"/> keeps the TRUE labels: ASR
/// compares predictions with <see cref="TargetLabel"/>, RA with <c>Data.Labels</c>.
/// </summary>
public sealed class BackdoorTestSet : IDisposable
{
    private BackdoorTestSet(ImageDataset data, long[] sourceIndices, int targetLabel)
    {
        Data = data;
        SourceIndices = sourceIndices;
        TargetLabel = targetLabel;
    }

    /// <summary>Triggered images with their true labels.</summary>
    public ImageDataset Data { get; }

    /// <summary>Index in the clean set of each sample of <see cref="Data"/>.</summary>
    public IReadOnlyList<long> SourceIndices { get; }

    public int TargetLabel { get; }

    public static BackdoorTestSet Build(ImageDataset cleanTest, TriggerSpec trigger, int targetLabel)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(targetLabel);
        long[] keep;
        using (var scope = NewDisposeScope())
        {
            keep = cleanTest.Labels.ne(targetLabel).nonzero().reshape(-1).cpu().data<long>().ToArray();
        }

        if (keep.Length == 0)
        {
            throw new DatasetFileException($"every test sample has the target label {targetLabel}; no backdoor test set can be built");
        }

        using var subset = cleanTest.Subset(keep);
        using var scope2 = NewDisposeScope();
        var triggered = trigger.ApplyTo(subset.Images);
        return new BackdoorTestSet(new ImageDataset(triggered, subset.Labels.clone()), keep, targetLabel);
    }

    public void Dispose() => Data.Dispose();
}
