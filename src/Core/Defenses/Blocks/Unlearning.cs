using WebDefense.Core.Data;
using WebDefense.Core.Models;
using WebDefense.Core.Training;

namespace WebDefense.Core.Defenses.Blocks;

/// <summary>
/// Clean unlearning: gradient ASCENT of the cross-entropy on clean data (maximise the loss) until the
/// epoch's training accuracy (train mode, accumulated over the epoch) falls to the threshold
/// or below, as RNP (threshold 0.20) and TSBD (0.10) do. Returns the epochs run.
/// </summary>
public static class Unlearning
{
    public static IReadOnlyList<EpochReport> UntilAccuracy(Classifier model, ImageDataset clean, SgdOptions options, double threshold,
        Random random, Action<EpochReport>? onEpoch, CancellationToken cancellation)
    {
        var loop = new TrainingLoop
        {
            Model = model,
            Data = clean,
            Options = options,
            Maximize = true,
            StopWhen = epoch => epoch.TrainAccuracy <= threshold,
            OnEpoch = onEpoch,
        };
        return loop.Run(random, cancellation);
    }
}
