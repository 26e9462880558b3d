using WebDefense.Core.Data;
using WebDefense.Core.Models;
using WebDefense.Core.Training;
using static TorchSharp.torch;

namespace WebDefense.Core.Defenses.Blocks;

/// <summary>
/// Clean unlearning: gradient ASCENT of the cross-entropy on clean data (maximise the loss) until the
/// epoch's training accuracy (train mode, accumulated over the epoch) falls to the threshold
/// or below, as RNP (threshold 0.20) and TSBD (0.10) do. Returns the epochs run.
/// <see cref="ComplementUntilAccuracy"/> is the bounded variant: it minimises −log(1 − p_y), which pushes the
/// probability of the given label to zero and then stops pulling, where the ascent's loss grows without bound.
/// </summary>
public static class Unlearning
{
    /// <summary>Mean −log(1 − p_y + 1e-6) over the batch: zero once no sample's own label keeps any probability.</summary>
    public static BatchLoss ComplementLoss(Classifier model, TrainingBatch batch)
    {
        var logits = model.Forward(batch.Inputs);
        var own = nn.functional.softmax(logits, 1).gather(1, batch.Labels.unsqueeze(1)).squeeze(1);
        return new BatchLoss(own.neg().add(1 + 1e-6).log().neg().mean(), logits);
    }

    /// <summary>
    /// Unlearns <paramref name="forget"/> while learning <paramref name="retain"/>: every step adds to the forget batch's
    /// unlearning loss (<see cref="ComplementLoss"/>, or the negated cross-entropy for gradient ascent) the cross-entropy of
    /// an equally large batch drawn at random from <paramref name="retain"/> (augmented like the forget batch), so what
    /// only the retained samples teach survives the unlearning. Stops once the epoch's training accuracy on the forget
    /// set is at or below the threshold.
    /// </summary>
    public static IReadOnlyList<EpochReport> WhileRetaining(Classifier model, ImageDataset forget, ImageDataset retain, SgdOptions options, double threshold,
        bool complement, Random random, Action<EpochReport>? onEpoch, CancellationToken cancellation) =>
        new TrainingLoop
        {
            Model = model,
            Data = forget,
            Options = options,
            Loss = (m, batch) =>
            {
                BatchLoss unlearn;
                if (complement)
                {
                    unlearn = ComplementLoss(m, batch);
                }
                else
                {
                    var logits = m.Forward(batch.Inputs);
                    unlearn = new BatchLoss(nn.functional.cross_entropy(logits, batch.Labels).neg(), logits);
                }

                using var rows = tensor(Enumerable.Range(0, batch.Indices.Length).Select(_ => (long)random.Next(retain.Count)).ToArray());
                var pixels = options.Augment.Apply(retain.Images.index_select(0, rows), random);
                var learn = nn.functional.cross_entropy(m.Forward(m.Prepare(pixels)), m.OnDevice(retain.Labels.index_select(0, rows)));
                return new BatchLoss(unlearn.Loss.add(learn), unlearn.Logits);
            },
            StopWhen = epoch => epoch.TrainAccuracy <= threshold,
            OnEpoch = onEpoch,
        }.Run(random, cancellation);

    /// <summary>
    /// Unlearns <paramref name="forget"/> until its epoch training accuracy is at or below the threshold: with the bounded
    /// <see cref="ComplementLoss"/> or by gradient ascent, and, given a <paramref name="retain"/> set, jointly with learning
    /// it (<see cref="WhileRetaining"/>).
    /// </summary>
    public static IReadOnlyList<EpochReport> Forget(Classifier model, ImageDataset forget, ImageDataset? retain, SgdOptions options, double threshold,
        bool complement, Random random, CancellationToken cancellation) =>
        retain is not null ? WhileRetaining(model, forget, retain, options, threshold, complement, random, null, cancellation)
        : complement ? ComplementUntilAccuracy(model, forget, options, threshold, random, null, cancellation)
        : UntilAccuracy(model, forget, options, threshold, random, null, cancellation);

    /// <summary>Minimises <see cref="ComplementLoss"/> until the epoch's training accuracy is at or below the threshold.</summary>
    public static IReadOnlyList<EpochReport> ComplementUntilAccuracy(Classifier model, ImageDataset clean, SgdOptions options, double threshold,
        Random random, Action<EpochReport>? onEpoch, CancellationToken cancellation) =>
        new TrainingLoop
        {
            Model = model,
            Data = clean,
            Options = options,
            Loss = ComplementLoss,
            StopWhen = epoch => epoch.TrainAccuracy <= threshold,
            OnEpoch = onEpoch,
        }.Run(random, cancellation);

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
