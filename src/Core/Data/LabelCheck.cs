using static TorchSharp.torch;

namespace WebDefense.Core.Data;

/// <summary>Checks on labels, with messages that name the first offending sample.</summary>
public static class LabelCheck
{
    /// <summary>Throws <see cref="DatasetFileException"/> unless every label lies in [0, <paramref name="numClasses"/>).</summary>
    public static void EnsureInRange(ImageDataset data, int numClasses, string what = "dataset")
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numClasses, 1);
        using var scope = NewDisposeScope();
        var labels = data.Labels;
        var bad = labels.lt(0).logical_or_(labels.ge(numClasses)).nonzero();
        if (bad.shape[0] > 0)
        {
            long index = bad[0, 0].item<long>();
            long value = labels[index].item<long>();
            throw new DatasetFileException(
                $"{what}: label {value} at sample {index} is outside 0..{numClasses - 1} ({bad.shape[0]} such labels in all)");
        }
    }

    /// <summary>Largest label + 1, checked against <see cref="DatasetReadLimits.MaxClasses"/> and, when given, <see cref="DatasetReadOptions.NumClasses"/>.</summary>
    internal static void Validate(ImageDataset data, DatasetReadOptions options, string what)
    {
        using (var scope = NewDisposeScope())
        {
            var min = data.Labels.min().item<long>();
            if (min < 0)
            {
                long index = data.Labels.lt(0).nonzero()[0, 0].item<long>();
                throw new DatasetFileException($"{what}: label {data.Labels[index].item<long>()} at sample {index} is negative");
            }
        }

        EnsureInRange(data, options.NumClasses ?? options.Limits.MaxClasses, what);
    }
}
