using TorchSharp;
using TorchSharp.Modules;
using WebDefense.Core.Data;
using WebDefense.Core.Models;
using static TorchSharp.torch;
using WebDefense.Core.Runtime;

namespace WebDefense.Core.Training;

/// <summary>A mini-batch: normalised inputs, labels (int64) and the rows of the dataset they came from.</summary>
public sealed record TrainingBatch(Tensor Inputs, Tensor Labels, long[] Indices);

/// <summary>The loss of one batch and, if available, its logits (for training accuracy).</summary>
public readonly record struct BatchLoss(Tensor Loss, Tensor? Logits);

/// <summary>What one epoch did. <see cref="Validation"/> is the caller's validation score (lower is better).</summary>
public sealed record EpochReport(int Epoch, double Loss, double TrainAccuracy, double LearningRate, double? Validation, bool Improved);

/// <summary>
/// The shared SGD loop behind training, fine-tuning and gradient-ascent unlearning: one optimizer step per
/// batch in train mode, the schedule stepped per epoch, an optional hook after every step (e.g. to keep
/// pruned weights at zero), optional validation with patience (the best state is restored at the end),
/// and an optional stop rule. Every batch runs in its own dispose scope; same seed → same result on CPU.
/// </summary>
public sealed class TrainingLoop
{
    public required Classifier Model { get; init; }
    public required ImageDataset Data { get; init; }
    public SgdOptions Options { get; init; } = new();

    /// <summary>Loss of a batch; default: cross-entropy of the model's logits with the batch labels.</summary>
    public Func<Classifier, TrainingBatch, BatchLoss>? Loss { get; init; }

    /// <summary>Parameters to optimise; default: every parameter of the model that requires grad.</summary>
    public IEnumerable<Parameter>? Parameters { get; init; }

    /// <summary>
    /// Gradient ascent instead of descent (unlearning), done as descent on the negated loss: TorchSharp 0.107's
    /// <c>SGD(maximize: true)</c> adds the weight decay before flipping the sign, so weights grow (PyTorch shrinks them).
    /// </summary>
    public bool Maximize { get; init; }

    /// <summary>Runs after every optimizer step, under no_grad (masks, clipping).</summary>
    public Action? AfterStep { get; init; }

    /// <summary>
    /// Runs after the backward pass and before the optimizer step, under no_grad (e.g. SAM puts the weights back
    /// after computing the gradient at the perturbed point).
    /// </summary>
    public Action? BeforeStep { get; init; }

    /// <summary>
    /// Validation score after each epoch, lower is better. With <see cref="Patience"/> the best epoch's state is
    /// restored at the end (the starting state is a candidate only with <see cref="StartIsCandidate"/>).
    /// </summary>
    public Func<double>? Validate { get; init; }

    /// <summary>
    /// With <see cref="Validate"/> and <see cref="Patience"/>: the state before the first epoch is scored too, and kept
    /// when no epoch beats it (Grad-Prune's fine-tuning). Then no report is marked <see cref="EpochReport.Improved"/>.
    /// </summary>
    public bool StartIsCandidate { get; init; }

    /// <summary>Stop after this many epochs without validation improvement (needs <see cref="Validate"/>).</summary>
    public int? Patience { get; init; }

    /// <summary>Stop after an epoch for which this returns true.</summary>
    public Func<EpochReport, bool>? StopWhen { get; init; }

    public Action<EpochReport>? OnEpoch { get; init; }

    public IReadOnlyList<EpochReport> Run(Random random, CancellationToken cancellation = default)
    {
        var parameters = (Parameters ?? Model.Module.parameters().Where(p => p.requires_grad)).ToList();
        using var optimizer = optim.SGD(parameters, Options.LearningRate, Options.Momentum, 0, Options.WeightDecay, false, maximize: false);
        var loss = Loss ?? CrossEntropy;
        var history = new List<EpochReport>();
        StateDict? best = null;
        var bestScore = double.PositiveInfinity;
        var sinceBest = 0;
        try
        {
            if (StartIsCandidate && Patience is not null && Validate is not null)
            {
                bestScore = Validate();
                best = StateDict.FromModule(Model.Module);
            }

            for (var epoch = 0; epoch < Options.Epochs; epoch++)
            {
                cancellation.ThrowIfCancellationRequested();
                var rate = Options.Schedule.At(Options.LearningRate, epoch);
                foreach (var group in optimizer.ParamGroups)
                {
                    group.LearningRate = rate;
                }

                var (meanLoss, accuracy) = RunEpoch(optimizer, loss, random, cancellation);
                double? score = Validate?.Invoke();
                var improved = score is { } s && s < bestScore;
                if (improved)
                {
                    bestScore = score!.Value;
                    sinceBest = 0;
                    if (Patience is not null)
                    {
                        best?.Dispose();
                        best = StateDict.FromModule(Model.Module);
                    }
                }
                else if (score is not null)
                {
                    sinceBest++;
                }

                var report = new EpochReport(epoch, meanLoss, accuracy, rate, score, improved);
                history.Add(report);
                OnEpoch?.Invoke(report);
                if ((Patience is { } patience && sinceBest >= patience) || StopWhen?.Invoke(report) == true)
                {
                    break;
                }
            }

            if (best is not null)
            {
                best.CopyInto(Model.Module);
            }
        }
        finally
        {
            best?.Dispose();
        }

        return history;
    }

    private (double Loss, double Accuracy) RunEpoch(optim.Optimizer optimizer, Func<Classifier, TrainingBatch, BatchLoss> loss, Random random, CancellationToken cancellation)
    {
        Model.Module.train();
        // Counters stay on the model's device and are read once per epoch (float64: the same sums as adding on the host).
        using var lossSum = zeros(1, ScalarType.Float64, device: Model.Device);
        using var correct = zeros(1, ScalarType.Int64, device: Model.Device);
        long seen = 0;
        foreach (var rows in BatchPlan.Epoch(Data.Count, Options.BatchSize, shuffle: true, Options.DropLast, random))
        {
            cancellation.ThrowIfCancellationRequested();
            using var quiet = GcQuietRegion.Enter();
            using var scope = NewDisposeScope();
            using var index = tensor(rows);
            var pixels = Options.Augment.Apply(Data.Images.index_select(0, index), random);
            var batch = new TrainingBatch(Model.Prepare(pixels), Model.OnDevice(Data.Labels.index_select(0, index)), rows);
            optimizer.zero_grad();
            var (value, logits) = loss(Model, batch);
            (Maximize ? value.neg() : value).backward();
            if (BeforeStep is not null)
            {
                using var noGrad = no_grad();
                BeforeStep();
            }

            optimizer.step();
            if (AfterStep is not null)
            {
                using var noGrad = no_grad();
                AfterStep();
            }

            lossSum.add_(value.detach().to_type(ScalarType.Float64).mul(rows.Length));
            seen += rows.Length;
            if (logits is not null)
            {
                correct.add_(logits.argmax(1).eq(batch.Labels).sum());
            }
        }

        return seen == 0 ? (0, 0) : (lossSum.item<double>() / seen, (double)correct.item<long>() / seen);
    }

    private static BatchLoss CrossEntropy(Classifier model, TrainingBatch batch)
    {
        var logits = model.Forward(batch.Inputs);
        return new BatchLoss(nn.functional.cross_entropy(logits, batch.Labels), logits);
    }
}
