using WebDefense.Core.Scanning;
using TorchSharp;
using WebDefense.Core.Defenses.Blocks;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Evaluation;
using WebDefense.Core.Training;
using static TorchSharp.torch;
using WebDefense.Core.Runtime;

namespace WebDefense.Core.Defenses;

/// <summary>
/// RNP, Reconstructive Neuron Pruning (Li et al., ICML 2023; reference-algorithms §10): unlearn the model by
/// gradient ascent on clean data, recover a BN channel mask on the unlearned model, then prune the ORIGINAL
/// model's channels in ascending mask order. The pruning level is chosen on a validation slice of the clean data.
/// </summary>
public sealed class RnpDefense : IDefense
{
    public string Name => "rnp";
    public string Title => "RNP (Reconstructive Neuron Pruning)";
    public string Description => "Unlearns the model on clean data, recovers a filter mask that restores clean accuracy, and prunes the channels the recovery kept switched off: those carry the backdoor.";
    public string Paper => "Li, Lyu, Ma, Koren, Lyu, Jiang, Wang. Reconstructive Neuron Pruning for Backdoor Defense. ICML 2023. https://arxiv.org/abs/2305.14876";
    public DefenseNeeds Needs => DefenseNeeds.CleanData;
    public IReadOnlyList<string> Steps => ["unlearn", "recover masks", "prune sweep", "select"];

    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Number("clean_threshold", 0.20, 0.0, 1.0, "Stop unlearning when the epoch's training accuracy is at or below this."),
        ParameterSpec.Number("unlearning_lr", 0.01, 1e-5, 1.0, "SGD learning rate of unlearning (gradient ascent); MultiStepLR [10, 20], γ 0.1."),
        ParameterSpec.Int("unlearning_epochs", 20, 1, 200, "Maximum unlearning epochs."),
        ParameterSpec.Number("recovering_lr", 0.2, 1e-4, 10.0, "SGD learning rate of the mask recovery."),
        ParameterSpec.Int("recovering_epochs", 20, 1, 200, "Mask recovery epochs."),
        ParameterSpec.Number("alpha", 0.2, 0.0, 1.0, "Weight of the clean loss during mask recovery (loss = α·CE)."),
        ParameterSpec.Int("batch_size", 128, 1, 4096, "Mini-batch size."),
        ParameterSpec.Number("val_fraction", 0.1, 0.01, 0.5, "Share of the clean data held out to choose the pruning level."),
        ParameterSpec.Choice("pruning_by", "number", ["number", "threshold"], "number: prune channels one by one in ascending mask order (the first 200 one by one, then steps of about 0.5% of the channels); threshold: prune every channel with mask ≤ t for t = 0, pruning_step, …, pruning_max (the reference's evaluate_by_threshold)."),
        ParameterSpec.Number("pruning_max", 0.90, 0.0, 1.0, "Largest share of channels (by number) or largest mask threshold (by threshold) in the sweep."),
        ParameterSpec.Number("pruning_step", 0.05, 0.001, 0.5, "Threshold step of the threshold sweep."),
        ParameterSpec.Choice("selection", "acc-bound", ["acc-bound", "fixed-threshold"], "acc-bound: largest pruning whose validation ACC drop stays within max_acc_drop; fixed-threshold: prune every channel with mask ≤ fixed_threshold (BackdoorBench's final model, 0.70)."),
        ParameterSpec.Number("max_acc_drop", 0.03, 0.0, 1.0, "Largest validation ACC drop allowed by the acc-bound selection."),
        ParameterSpec.Number("fixed_threshold", 0.70, 0.0, 1.0, "Mask threshold of the fixed-threshold selection."),
        ParameterSpec.Flag("augment", true, "Random-crop (and, for colour images, flip) augmentation of the clean data, as the reference does."),
        ScanAssistance.Scan,
        ScanAssistance.MaxValAsr,
    ];

    public DefenseOutcome Run(DefenseContext context)
    {
        var p = context.Parameters;
        var observer = context.Observer;
        var (train, validation) = ValidationSlice.Holdout(context, p.Number("val_fraction"));
        using var trainData = train;
        using var validationData = validation; // triggered rows only add validation ASR to the trajectory
        var augment = p.Flag("augment") ? Augmentation.ForInput(context.Model.Input) : Augmentation.None;
        var findings = new Dictionary<string, object>();
        var trajectory = new List<TrajectoryPoint>();

        // Step 1: unlearning — maximise the clean loss on a copy of the model until train ACC ≤ clean_threshold.
        observer.StepStarted(0, Steps.Count, Steps[0]);
        using var unlearned = context.Model.Clone();
        var unlearning = Unlearning.UntilAccuracy(unlearned, train,
            new SgdOptions
            {
                LearningRate = p.Number("unlearning_lr"), Momentum = 0.9, WeightDecay = 5e-4, BatchSize = p.Int("batch_size"),
                Epochs = p.Int("unlearning_epochs"), Schedule = LearningRateSchedule.MultiStep([10, 20], 0.1), Augment = augment,
            },
            p.Number("clean_threshold"), context.Random,
            epoch =>
            {
                var point = new TrajectoryPoint(epoch.Epoch + 1, "unlearning epoch", epoch.TrainAccuracy, Loss: epoch.Loss, Phase: "unlearn");
                trajectory.Add(point);
                observer.Point(point);
                observer.Progress((epoch.Epoch + 1.0) / p.Int("unlearning_epochs"), $"epoch {epoch.Epoch + 1}: train ACC {epoch.TrainAccuracy:P1}");
            },
            context.Cancellation);
        findings["unlearning_epochs"] = unlearning.Count;
        findings["unlearned_train_acc"] = unlearning[^1].TrainAccuracy;

        // Backdoor-label detection (paper Table 16): the class the unlearned model predicts most on clean data.
        var predictions = Evaluator.Predict(unlearned, train.Images);
        var top = predictions.GroupBy(x => x).OrderByDescending(g => g.Count()).ThenBy(g => g.Key).First();
        findings["detected_backdoor_label"] = (int)top.Key;
        findings["detected_label_share"] = (double)top.Count() / predictions.Length;
        observer.Log($"unlearned model predicts class {top.Key} for {(double)top.Count() / predictions.Length:P1} of clean samples");

        // Step 2: recovering — learn a BN channel mask on the unlearned model, minimising α·CE on clean data.
        observer.StepStarted(1, Steps.Count, Steps[1]);
        var masks = RecoverMasks(unlearned, train, p, augment, context);

        // Step 3: prune the ORIGINAL model's channels by ascending mask value, sweeping the threshold.
        observer.StepStarted(2, Steps.Count, Steps[2]);
        var topology = ModelTopology.Discover(context.Model);
        using var gammas = GammaSnapshot.Take(topology);
        // Channels in ascending mask order (ties in model order); a level prunes the first Units of them.
        var order = MaskPruning.Ascending(masks);
        observer.Log($"{order.Count(m => m.Value <= 0.2)} of {order.Count} channels at mask ≤ 0.2; lowest: " +
                     string.Join(", ", order.Take(10).Select(m => $"{m.Layer.Name}[{m.Channel}] {m.Value:0.###}")));
        var levels = MaskPruning.Levels(order, p.Choice("pruning_by"), p.Number("pruning_max"), p.Number("pruning_step"));

        void Prune(PruningSweep.Level level)
        {
            gammas.Restore();
            MaskPruning.ZeroGammas(topology, order.Take(level.Units));
        }

        var sweep = PruningSweep.Run(levels, Prune, () => validation.Score(context.Model), p.Number("max_acc_drop"), "channels pruned", observer, context.Cancellation, context.MaxValidationAsr);
        trajectory.AddRange(sweep.Points.Select(x => new TrajectoryPoint(x.Level.Units, "channels pruned", x.Scores.Acc, x.Scores.Asr, x.Scores.Ra, x.Scores.CleanLoss, $"threshold {x.Level.Threshold:0.###}")));

        // Step 4: select on validation data only and leave the model at the chosen point.
        observer.StepStarted(3, Steps.Count, Steps[3]);
        var (chosen, rule) = p.Choice("selection") == "fixed-threshold"
            ? (new PruningSweep.Level(order.Count(m => m.Value <= p.Number("fixed_threshold")), p.Number("fixed_threshold")),
               $"fixed threshold: every BN channel with recovered mask ≤ {p.Number("fixed_threshold"):0.###}")
            : (sweep.Points[sweep.ChosenIndex].Level, sweep.Rule);
        Prune(chosen);
        findings["pruned_channels"] = chosen.Units;
        findings["total_channels"] = masks.Count;
        return new DefenseOutcome(trajectory, new OperatingPoint(chosen.Units, rule), findings);
    }

    private static IReadOnlyList<(BatchNormLayer Layer, int Channel, float Value)> RecoverMasks(Models.Classifier unlearned, Data.ImageDataset train,
        DefenseParameters p, Augmentation augment, DefenseContext context)
    {
        var topology = ModelTopology.Discover(unlearned);
        if (topology.BatchNorms.Count == 0)
        {
            throw new InvalidOperationException("RNP masks batch-norm channels, and this model has no batch-norm layers.");
        }

        var trainable = unlearned.Module.parameters().ToList();
        var maskOnly = topology.BatchNorms.Select(b => b.Weight).ToHashSet();
        foreach (var parameter in trainable) parameter.requires_grad = maskOnly.Contains(parameter);
        using var mask = new BatchNormMask(topology);
        var epochs = p.Int("recovering_epochs");
        var alpha = p.Number("alpha");
        for (var epoch = 0; epoch < epochs; epoch++)
        {
            unlearned.Module.train();
            double lossSum = 0;
            foreach (var rows in BatchPlan.Epoch(train.Count, p.Int("batch_size"), shuffle: true, dropLast: false, context.Random))
            {
                context.Cancellation.ThrowIfCancellationRequested();
                using var quiet = GcQuietRegion.Enter();
                using var scope = NewDisposeScope();
                using var index = tensor(rows);
                var x = unlearned.Prepare(augment.Apply(train.Images.index_select(0, index), context.Random));
                mask.Write();
                unlearned.Module.zero_grad();
                var loss = nn.functional.cross_entropy(unlearned.Forward(x), unlearned.OnDevice(train.Labels.index_select(0, index))) * alpha;
                loss.backward();
                mask.Step(p.Number("recovering_lr"), 0.9);
                lossSum += loss.item<float>() * rows.Length;
            }

            context.Observer.Progress((epoch + 1.0) / epochs, $"recovery epoch {epoch + 1}: loss {lossSum / train.Count:0.####}");
        }

        return mask.Values();
    }
}
