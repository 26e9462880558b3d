using WebDefense.Core.Scanning;
using TorchSharp;
using WebDefense.Core.Data;
using WebDefense.Core.Defenses.Blocks;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Models;
using WebDefense.Core.Training;
using static TorchSharp.torch;
using WebDefense.Core.Runtime;

namespace WebDefense.Core.Defenses;

/// <summary>
/// Grad-Prune (Dunnett et al., "Unlearning Backdoor Attacks through Gradient-Based Model Pruning";
/// reference-algorithms §11): repeatedly prune the one conv filter with the largest mean |gradient| of the
/// unlearning loss (CE of triggered images with their TRUE labels), keep the model with the lowest validation
/// unlearning loss, then fine-tune on clean + triggered-with-true-labels data with patience.
/// </summary>
public sealed class GradPruneDefense : IDefense
{
    public string Name => "grad-prune";
    public string Title => "Grad-Prune (gradient-based pruning of the unlearning loss)";
    public string Description => "Scores every conv filter by the gradient of the loss on triggered images with their true labels, prunes the highest-scoring filter one round at a time while validation accuracy holds, then fine-tunes. Needs backdoor samples (a trigger spec or uploaded triggered images).";
    public string Paper => "Dunnett, Arablouei, Miller, Dedeoglu, Abu-Mahfouz. Unlearning Backdoor Attacks through Gradient-Based Model Pruning. DSN-W 2024. https://arxiv.org/abs/2405.03918";
    public DefenseNeeds Needs => DefenseNeeds.CleanData | DefenseNeeds.BackdoorSamples;
    public IReadOnlyList<string> Steps => ["split", "prune", "fine-tune"];

    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Int("samples_per_class", 100, 1, 5000, "Samples drawn per class (the reference default; the paper evaluates 2, 10 and 100)."),
        ParameterSpec.Number("val_ratio", 0.1, 0.0, 0.5, "Share of each class's samples used for validation (at least one)."),
        ParameterSpec.Number("accuracy_threshold", 0.1, 0.0, 1.0, "α: stop pruning when validation ACC has dropped this much (absolute)."),
        ParameterSpec.Int("pruning_patience", 10, 1, 1000, "P_p: stop after this many rounds without a lower validation unlearning loss."),
        ParameterSpec.Int("max_rounds", 500, 1, 100000, "Safety cap on pruning rounds (one filter per round)."),
        ParameterSpec.Int("tuning_patience", 10, 1, 1000, "P_t: stop fine-tuning after this many epochs without a lower validation clean loss."),
        ParameterSpec.Int("max_tuning_epochs", 100, 0, 10000, "Safety cap on fine-tuning epochs (0 skips fine-tuning)."),
        ParameterSpec.Number("lr", 0.001, 1e-6, 1.0, "Fine-tuning SGD learning rate (no scheduler)."),
        ParameterSpec.Int("batch_size", 128, 1, 4096, "Mini-batch size."),
        ParameterSpec.Flag("persistent_mask", true, "Keep pruned filters at zero during fine-tuning (the reference code lets them regrow)."),
        ParameterSpec.Flag("keep_untuned", true, "The pruned model before fine-tuning is a candidate too: kept when no fine-tuning epoch has a lower validation clean loss (the authors' code)."),
        ParameterSpec.Choice("scoring_bn_mode", "eval", ["eval", "reference"],
            "BatchNorm while scoring filters. eval: frozen statistics for every batch. reference: the first batch of each round in training mode, so the BN running statistics take in triggered images each round, as the authors' code does by a side effect."),
        ScanAssistance.Scan,
    ];

    public DefenseOutcome Run(DefenseContext context)
    {
        var p = context.Parameters;
        var observer = context.Observer;
        var backdoor = context.Backdoor ?? throw new InvalidOperationException(
            "Grad-Prune needs backdoor samples: give a trigger spec or upload triggered images with their true labels.");

        // Split: spc per class, the first n_val of each class for validation (pairs stay together when paired).
        observer.StepStarted(0, Steps.Count, Steps[0]);
        var (cleanTrainRows, cleanValRows) = DataSplits.PerClass(Labels(context.CleanData), p.Int("samples_per_class"), p.Number("val_ratio"), context.Random);
        var (bdTrainRows, bdValRows) = backdoor.PairedWithClean
            ? (cleanTrainRows, cleanValRows)
            : DataSplits.PerClass(Labels(backdoor.Images), p.Int("samples_per_class"), p.Number("val_ratio"), context.Random);
        using var cleanTrain = context.CleanData.Subset(cleanTrainRows);
        using var triggeredTrain = backdoor.Images.Subset(bdTrainRows);
        using var validation = new ValidationSet(context.CleanData.Subset(cleanValRows), backdoor.Images.Subset(bdValRows), context.TargetLabel);
        observer.Log($"{cleanTrain.Count} clean + {triggeredTrain.Count} triggered training samples, {validation.Clean.Count} + {validation.Backdoor!.Count} for validation");

        // Prune: one filter per round, by the largest mean |∂(unlearning loss)/∂w| over the filter's entries.
        observer.StepStarted(1, Steps.Count, Steps[1]);
        var model = context.Model;
        var topology = ModelTopology.Discover(model);
        var mask = new FilterMask(topology);
        var initial = validation.Score(model);
        var trajectory = new List<TrajectoryPoint> { Point(0, initial) };
        observer.Point(trajectory[0]);
        var best = StateDict.FromModule(model.Module);
        var bestLoss = initial.BackdoorLoss!.Value;
        var bestCount = 0;
        var patience = 0;
        var current = initial;
        try
        {
            while (initial.Acc - current.Acc < p.Number("accuracy_threshold") && patience < p.Int("pruning_patience") && mask.Count < p.Int("max_rounds"))
            {
                context.Cancellation.ThrowIfCancellationRequested();
                var (conv, filter) = HighestScoringFilter(model, topology, mask, triggeredTrain, p.Int("batch_size"), p.Choice("scoring_bn_mode") == "reference", context.Random);
                mask.Prune(conv, filter);
                current = validation.Score(model);
                var point = Point(mask.Count, current, $"{conv.Name}[{filter}]");
                trajectory.Add(point);
                observer.Point(point);
                if (current.BackdoorLoss < bestLoss && initial.Acc - current.Acc < p.Number("accuracy_threshold"))
                {
                    best.Dispose();
                    best = StateDict.FromModule(model.Module);
                    (bestLoss, bestCount, patience) = (current.BackdoorLoss!.Value, mask.Count, 0);
                }
                else
                {
                    patience++;
                }

                observer.Progress(Math.Min(1, patience / (double)p.Int("pruning_patience")),
                    $"round {mask.Count}: pruned {conv.Name}[{filter}], val ACC {current.Acc:P1}, val unlearning loss {current.BackdoorLoss:0.####}");
            }

            best.CopyInto(model.Module);
        }
        finally
        {
            best.Dispose();
        }

        var keptMask = new FilterMask(topology);
        foreach (var (conv, filter) in mask.Pruned.Take(bestCount)) keptMask.Prune(conv, filter);
        observer.Log($"kept the model after {bestCount} pruned filters (lowest validation unlearning loss {bestLoss:0.####})");

        // Fine-tune: CE on clean images + CE on triggered images with true labels, keep the lowest validation clean loss.
        observer.StepStarted(2, Steps.Count, Steps[2]);
        var epochs = 0;
        int? keptEpoch = null;
        if (p.Int("max_tuning_epochs") > 0)
        {
            var loop = new TrainingLoop
            {
                Model = model,
                Data = cleanTrain,
                Options = new SgdOptions { LearningRate = p.Number("lr"), Momentum = 0.9, WeightDecay = 5e-4, BatchSize = p.Int("batch_size"), Epochs = p.Int("max_tuning_epochs"), DropLast = false },
                Loss = (m, batch) => CleanPlusTriggeredLoss(m, batch, triggeredTrain, backdoor.PairedWithClean, context.Random),
                AfterStep = p.Flag("persistent_mask") ? keptMask.Apply : null,
                Validate = () => ValidationSet.MeanCrossEntropy(model, validation.Clean),
                Patience = p.Int("tuning_patience"),
                StartIsCandidate = p.Flag("keep_untuned"),
                OnEpoch = epoch =>
                {
                    var point = new TrajectoryPoint(epoch.Epoch + 1, "fine-tuning epoch", Loss: epoch.Validation, Note: $"train loss {epoch.Loss:0.####}", Phase: "fine-tune");
                    trajectory.Add(point);
                    observer.Point(point);
                    observer.Progress((epoch.Epoch + 1.0) / p.Int("max_tuning_epochs"), $"fine-tuning epoch {epoch.Epoch + 1}: val clean loss {epoch.Validation:0.####}");
                },
            };
            var reports = loop.Run(context.Random, context.Cancellation);
            epochs = reports.Count;
            keptEpoch = reports.LastOrDefault(r => r.Improved)?.Epoch + 1 ?? (p.Flag("keep_untuned") ? 0 : null);
            observer.Log(keptEpoch == 0
                ? "kept the pruned model before fine-tuning: no fine-tuning epoch had a lower validation clean loss"
                : $"kept fine-tuning epoch {keptEpoch} (lowest validation clean loss)");
        }

        var final = validation.Score(model);
        var findings = new Dictionary<string, object>
        {
            ["pruned_filters"] = bestCount,
            ["pruning_rounds"] = mask.Count,
            ["total_filters"] = topology.TotalFilters,
            ["fine_tuning_epochs"] = epochs,
            ["fine_tuning_epoch_kept"] = keptEpoch is { } kept ? kept : "none (fine-tuning skipped)",
            ["scoring_bn_mode"] = p.Choice("scoring_bn_mode"),
            ["persistent_mask"] = p.Flag("persistent_mask"),
            ["own_batchnorm_pairs"] = topology.Convs.Count(c => c.BatchNorm is not null),
            ["final_val_acc"] = final.Acc,
        };
        var rule = $"pruning: lowest validation unlearning loss while validation ACC dropped less than α = {p.Number("accuracy_threshold"):0.###} " +
                   $"(patience {p.Int("pruning_patience")}); fine-tuning: lowest validation clean loss (patience {p.Int("tuning_patience")})";
        return new DefenseOutcome(trajectory, new OperatingPoint(bestCount, rule), findings);
    }

    private static TrajectoryPoint Point(int pruned, ValidationScores s, string? note = null) =>
        new(pruned, "filters pruned", s.Acc, s.Asr, s.Ra, s.BackdoorLoss, note);

    /// <summary>
    /// Accumulates the gradient of CE(f(x_b), y) over the training batches in a fresh random order each round (the
    /// authors' shuffled loader), scores each not-yet-pruned filter by the mean |grad| of its weights, returns the
    /// argmax. BN runs in eval mode (statistics fixed), or with <paramref name="referenceBnMode"/> in training mode for
    /// the first batch, as the authors' code does: that batch is normalised with its own statistics and the running
    /// statistics are updated with it.
    /// </summary>
    private static (ConvLayer Conv, int Filter) HighestScoringFilter(
        Classifier model, ModelTopology topology, FilterMask mask, ImageDataset triggered, int batchSize, bool referenceBnMode, Random random)
    {
        var wasTraining = model.Module.training;
        model.Module.zero_grad();
        try
        {
            var order = Enumerable.Range(0, triggered.Count).Select(i => (long)i).ToArray();
            random.Shuffle(order);
            for (var start = 0; start < triggered.Count; start += batchSize)
            {
                using var quiet = GcQuietRegion.Enter();
                using var scope = NewDisposeScope();
                model.Module.train(referenceBnMode && start == 0);
                using var rows = tensor(order.AsSpan(start, Math.Min(batchSize, triggered.Count - start)).ToArray());
                var logits = model.Forward(model.Prepare(triggered.Images.index_select(0, rows)));
                nn.functional.cross_entropy(logits, model.OnDevice(triggered.Labels.index_select(0, rows))).backward();
            }

            (ConvLayer Conv, int Filter)? best = null;
            var bestScore = float.NegativeInfinity;
            using var noGrad = no_grad();
            foreach (var conv in topology.Convs)
            {
                if (conv.Weight.grad is not { } grad) continue;
                using var scope = NewDisposeScope();
                var scores = grad.abs().flatten(1).mean([1]).cpu().data<float>().ToArray();
                for (var k = 0; k < scores.Length; k++)
                {
                    if (scores[k] > bestScore && !mask.IsPruned(conv, k))
                    {
                        (bestScore, best) = (scores[k], (conv, k));
                    }
                }
            }

            return best ?? throw new InvalidOperationException("no prunable conv filter has a gradient");
        }
        finally
        {
            model.Module.zero_grad();
            model.Module.train(wasTraining);
        }
    }

    /// <summary>CE on the clean batch plus CE on triggered images with their true labels (the same rows when paired).</summary>
    private static BatchLoss CleanPlusTriggeredLoss(Classifier model, TrainingBatch batch, ImageDataset triggered, bool paired, Random random)
    {
        var rows = paired ? batch.Indices : Enumerable.Range(0, batch.Indices.Length).Select(_ => (long)random.Next(triggered.Count)).ToArray();
        using var index = tensor(rows);
        var logits = model.Forward(batch.Inputs);
        var triggeredLogits = model.Forward(model.Prepare(triggered.Images.index_select(0, index)));
        var loss = nn.functional.cross_entropy(logits, batch.Labels) + nn.functional.cross_entropy(triggeredLogits, model.OnDevice(triggered.Labels.index_select(0, index)));
        return new BatchLoss(loss, logits);
    }

    private static long[] Labels(ImageDataset data) => data.Labels.data<long>().ToArray();
}
