using TorchSharp;
using WebDefense.Core.Data;
using WebDefense.Core.Models;
using static TorchSharp.torch;
using WebDefense.Core.Runtime;

namespace WebDefense.Core.Evaluation;

/// <summary>Batched, inference-mode evaluation: predictions, ACC, ASR, RA.</summary>
public static class Evaluator
{
    public const int DefaultBatchSize = 256;

    /// <summary>
    /// Predicted class of every image (uint8 N×C×H×W), in eval mode under inference mode, one dispose scope
    /// per batch, on the model's device. The module's train/eval mode is restored afterwards.
    /// </summary>
    public static long[] Predict(Classifier model, Tensor images, int batchSize = DefaultBatchSize, Action<int>? batchDone = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        var count = (int)images.shape[0];
        var wasTraining = model.Module.training;
        model.Module.eval();
        // The predictions stay on the model's device, in one tensor written batch by batch, and come to the host once.
        try
        {
            using var inference = torch.inference_mode();
            using var predicted = torch.empty(count, ScalarType.Int64, device: model.Device);
            for (var start = 0; start < count; start += batchSize)
            {
                using var quiet = GcQuietRegion.Enter();
                using var scope = NewDisposeScope();
                var length = Math.Min(batchSize, count - start);
                var x = model.Prepare(images.narrow(0, start, length));
                predicted.narrow(0, start, length).copy_(model.Forward(x).argmax(1));
                batchDone?.Invoke(length);
            }

            using var host = predicted.cpu();
            return host.data<long>().ToArray();
        }
        finally
        {
            model.Module.train(wasTraining);
        }
    }

    /// <summary>
    /// Predicted class of every sample of <paramref name="data"/> and the softmax probability the model gives to the
    /// sample's own label (eval mode, inference mode, one dispose scope per batch).
    /// </summary>
    public static (long[] Predicted, double[] LabelProbability) PredictWithConfidence(Classifier model, ImageDataset data, int batchSize = DefaultBatchSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        model.Input.EnsureMatches(data);
        var predicted = new long[data.Count];
        var probability = new double[data.Count];
        var wasTraining = model.Module.training;
        model.Module.eval();
        try
        {
            using var inference = torch.inference_mode();
            for (var start = 0; start < data.Count; start += batchSize)
            {
                using var quiet = GcQuietRegion.Enter();
                using var scope = NewDisposeScope();
                var length = Math.Min(batchSize, data.Count - start);
                var logits = model.Forward(model.Prepare(data.Images.narrow(0, start, length))).cpu();
                logits.argmax(1).data<long>().CopyTo(predicted, start);
                var labels = data.Labels.narrow(0, start, length).unsqueeze(1);
                nn.functional.softmax(logits, 1).gather(1, labels).squeeze(1).to_type(ScalarType.Float64).data<double>().CopyTo(probability, start);
            }
        }
        finally
        {
            model.Module.train(wasTraining);
        }

        return (predicted, probability);
    }

    /// <summary>Fraction of <paramref name="data"/> predicted as its label.</summary>
    public static double Accuracy(Classifier model, ImageDataset data, int batchSize = DefaultBatchSize, Action<int>? batchDone = null)
    {
        model.Input.EnsureMatches(data);
        return Fraction(Predict(model, data.Images, batchSize, batchDone), Labels(data), (p, y) => p == y);
    }

    /// <summary>
    /// ACC on <paramref name="cleanTest"/>; ASR and RA on <paramref name="backdoorTest"/> (triggered images
    /// with their TRUE labels), skipping samples whose true label is the target, as BackdoorBench does.
    /// </summary>
    public static BackdoorMetrics Evaluate(Classifier model, ImageDataset cleanTest, ImageDataset? backdoorTest, int targetLabel,
        int batchSize = DefaultBatchSize, Action<int, int>? progress = null)
    {
        // progress(images done, images in all), after every batch.
        var total = cleanTest.Count + (backdoorTest?.Count ?? 0);
        var done = 0;
        Action<int>? batchDone = progress is null ? null : n => progress(done += n, total);
        var acc = Accuracy(model, cleanTest, batchSize, batchDone);
        if (backdoorTest is null)
        {
            return new BackdoorMetrics(acc, null, null, cleanTest.Count, 0);
        }

        model.Input.EnsureMatches(backdoorTest, "backdoor test set");
        var (asr, ra, kept) = AttackMetrics(Predict(model, backdoorTest.Images, batchSize, batchDone), Labels(backdoorTest), targetLabel);
        return new BackdoorMetrics(acc, asr, ra, cleanTest.Count, kept);
    }

    /// <summary>ASR and RA from predictions and true labels; samples of the target class are excluded.</summary>
    public static (double Asr, double Ra, int Kept) AttackMetrics(IReadOnlyList<long> predictions, IReadOnlyList<long> trueLabels, int targetLabel)
    {
        int kept = 0, hitTarget = 0, recovered = 0;
        for (var i = 0; i < predictions.Count; i++)
        {
            if (trueLabels[i] == targetLabel)
            {
                continue;
            }

            kept++;
            if (predictions[i] == targetLabel) hitTarget++;
            if (predictions[i] == trueLabels[i]) recovered++;
        }

        return kept == 0
            ? throw new ArgumentException($"the backdoor test set has no samples outside the target class {targetLabel}")
            : ((double)hitTarget / kept, (double)recovered / kept, kept);
    }

    private static long[] Labels(ImageDataset data) => data.Labels.data<long>().ToArray();

    private static double Fraction(long[] predictions, long[] labels, Func<long, long, bool> hit)
    {
        if (predictions.Length == 0)
        {
            throw new ArgumentException("cannot evaluate on an empty dataset");
        }

        var hits = 0;
        for (var i = 0; i < predictions.Length; i++)
        {
            if (hit(predictions[i], labels[i])) hits++;
        }

        return (double)hits / predictions.Length;
    }
}
