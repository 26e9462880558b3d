using TorchSharp;
using WebDefense.Core.Data;
using WebDefense.Core.Evaluation;
using WebDefense.Core.Models;
using static TorchSharp.torch;
using WebDefense.Core.Runtime;

namespace WebDefense.Core.Defenses.Blocks;

/// <summary>Validation scores of one model state, all on the defender's held-out data.</summary>
public sealed record ValidationScores(double Acc, double? Asr, double? Ra, double CleanLoss, double? BackdoorLoss);

/// <summary>
/// The defender's validation slice: clean images and, when available, triggered images with their TRUE labels
/// (and the target label, for validation ASR). Owns its datasets.
/// </summary>
public sealed class ValidationSet(ImageDataset clean, ImageDataset? backdoor, int? targetLabel) : IDisposable
{
    public ImageDataset Clean { get; } = clean;
    public ImageDataset? Backdoor { get; } = backdoor;
    public int? TargetLabel { get; } = targetLabel;

    public ValidationScores Score(Classifier model)
    {
        var acc = Evaluator.Accuracy(model, Clean);
        var cleanLoss = MeanCrossEntropy(model, Clean);
        if (Backdoor is null)
        {
            return new ValidationScores(acc, null, null, cleanLoss, null);
        }

        var backdoorLoss = MeanCrossEntropy(model, Backdoor);
        double? asr = null, ra = null;
        if (TargetLabel is { } target && Backdoor.Labels.ne(target).any().item<bool>())
        {
            var predictions = Evaluator.Predict(model, Backdoor.Images);
            (asr, ra, _) = Evaluator.AttackMetrics(predictions, Backdoor.Labels.data<long>().ToArray(), target);
        }

        return new ValidationScores(acc, asr, ra, cleanLoss, backdoorLoss);
    }

    /// <summary>Mean cross-entropy of the model (eval mode, no grad) on a labelled set.</summary>
    public static double MeanCrossEntropy(Classifier model, ImageDataset data, int batchSize = Evaluator.DefaultBatchSize)
    {
        var wasTraining = model.Module.training;
        model.Module.eval();
        try
        {
            using var noGrad = no_grad();
            // Summed on the model's device in float64 (the same sums as adding on the host), read once.
            using var sum = zeros(1, ScalarType.Float64, device: model.Device);
            for (var start = 0; start < data.Count; start += batchSize)
            {
                using var quiet = GcQuietRegion.Enter();
                using var scope = NewDisposeScope();
                var length = Math.Min(batchSize, data.Count - start);
                var logits = model.Forward(model.Prepare(data.Images.narrow(0, start, length)));
                sum.add_(nn.functional.cross_entropy(logits, model.OnDevice(data.Labels.narrow(0, start, length)), reduction: nn.Reduction.Sum).to_type(ScalarType.Float64));
            }

            return sum.item<double>() / data.Count;
        }
        finally
        {
            model.Module.train(wasTraining);
        }
    }

    public void Dispose()
    {
        Clean.Dispose();
        Backdoor?.Dispose();
    }
}
