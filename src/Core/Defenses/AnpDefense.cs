using WebDefense.Core.Scanning;
using TorchSharp;
using WebDefense.Core.Data;
using WebDefense.Core.Defenses.Blocks;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Models;
using WebDefense.Core.Runtime;
using WebDefense.Core.Training;
using static TorchSharp.torch;

namespace WebDefense.Core.Defenses;

/// <summary>
/// ANP, Adversarial Neuron Pruning (Wu and Wang, NeurIPS 2021; reference-algorithms §8): learn a mask on every BN
/// channel that keeps clean accuracy under adversarial multiplicative perturbations of the channels (backdoor channels
/// are the ones that break under them), then prune the ORIGINAL model's channels in ascending mask order. The pruning
/// level is chosen on a validation slice of the clean data.
/// </summary>
public sealed class AnpDefense : IDefense
{
    public string Name => "anp";
    public string Title => "ANP (Adversarial Neuron Pruning)";
    public string Description => "Perturbs batch-norm channels adversarially and learns a mask that keeps clean accuracy under the perturbation; channels the mask switches off are the ones most sensitive to perturbation, which is where backdoors live. Prunes them in ascending mask order.";
    public string Paper => "Wu, Wang. Adversarial Neuron Pruning Purifies Backdoored Deep Models. NeurIPS 2021. https://arxiv.org/abs/2110.14430";
    public DefenseNeeds Needs => DefenseNeeds.CleanData;
    public IReadOnlyList<string> Steps => ["optimise masks", "prune sweep", "select"];

    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Number("anp_eps", 0.4, 0.0, 1.0, "Bound ε of the multiplicative channel perturbations δ (on γ) and ξ (on β)."),
        ParameterSpec.Int("anp_steps", 1, 1, 20, "Signed-gradient ascent steps of the perturbation per iteration (step ε/anp_steps)."),
        ParameterSpec.Number("anp_alpha", 0.2, 0.0, 1.0, "Trade-off: loss = α·CE(clean) + (1 − α)·CE(perturbed)."),
        ParameterSpec.Number("mask_lr", 0.2, 1e-4, 10.0, "SGD learning rate of the masks (momentum 0.9); the original code's 0.2, not BackdoorBench's 0.01."),
        ParameterSpec.Int("nb_iter", 2000, 1, 100000, "Mask optimisation iterations (one batch drawn with replacement each)."),
        ParameterSpec.Int("batch_size", 128, 1, 4096, "Mini-batch size."),
        ParameterSpec.Number("val_fraction", 0.1, 0.01, 0.5, "Share of the clean data held out to choose the pruning level."),
        ParameterSpec.Choice("pruning_by", "number", ["number", "threshold"], "number: prune channels one by one in ascending mask order (the first 200 one by one, then steps of about 0.5% of the channels); threshold: every channel with mask ≤ t for t = 0, pruning_step, …, pruning_max (the reference's default)."),
        ParameterSpec.Number("pruning_max", 0.90, 0.0, 1.0, "Largest share of channels (by number) or largest mask threshold (by threshold) in the sweep."),
        ParameterSpec.Number("pruning_step", 0.05, 0.001, 0.5, "Threshold step of the threshold sweep."),
        ParameterSpec.Choice("selection", "acc-bound", ["acc-bound", "fixed-threshold"], "acc-bound: largest pruning whose validation ACC drop stays within max_acc_drop; fixed-threshold: prune every channel with mask ≤ fixed_threshold."),
        ParameterSpec.Number("max_acc_drop", 0.03, 0.0, 1.0, "Largest validation ACC drop allowed by the acc-bound selection."),
        ParameterSpec.Number("fixed_threshold", 0.2, 0.0, 1.0, "Mask threshold of the fixed-threshold selection."),
        ParameterSpec.Flag("augment", true, "Random-crop (and, for colour images, flip) augmentation of the clean data, as the reference does."),
        ScanAssistance.Scan,
        ScanAssistance.MaxValAsr,
    ];

    public DefenseOutcome Run(DefenseContext context)
    {
        var p = context.Parameters;
        var observer = context.Observer;
        var topology = ModelTopology.Discover(context.Model);
        if (topology.BatchNorms.Count == 0)
        {
            throw new DefenseInputException("ANP perturbs and masks batch-norm channels, and this model has no batch-norm layers.");
        }

        var (train, validation) = ValidationSlice.Holdout(context, p.Number("val_fraction"));
        using var trainData = train;
        using var validationData = validation;

        // Step 1: mask optimisation under adversarial neuron perturbation, on a copy (BN statistics change in train mode).
        observer.StepStarted(0, Steps.Count, Steps[0]);
        var (masks, lastLoss) = OptimiseMasks(train, p, context);

        // Step 2: prune the ORIGINAL model's channels (γ ← 0) in ascending mask order, scored on validation data.
        observer.StepStarted(1, Steps.Count, Steps[1]);
        using var gammas = GammaSnapshot.Take(topology);
        var order = MaskPruning.Ascending(masks);
        var levels = MaskPruning.Levels(order, p.Choice("pruning_by"), p.Number("pruning_max"), p.Number("pruning_step"));
        void Prune(PruningSweep.Level level)
        {
            gammas.Restore();
            MaskPruning.ZeroGammas(topology, order.Take(level.Units));
        }

        var sweep = PruningSweep.Run(levels, Prune, () => validation.Score(context.Model), p.Number("max_acc_drop"), "channels pruned", observer, context.Cancellation, context.MaxValidationAsr);
        var trajectory = sweep.Points.Select(x => new TrajectoryPoint(x.Level.Units, "channels pruned", x.Scores.Acc, x.Scores.Asr, x.Scores.Ra, x.Scores.CleanLoss,
            x.Level.Units == 0 ? "unpruned" : $"mask ≤ {x.Level.Threshold:0.###}")).ToList();

        // Step 3: select on validation data only and leave the model at the chosen point.
        observer.StepStarted(2, Steps.Count, Steps[2]);
        var (chosen, rule) = p.Choice("selection") == "fixed-threshold"
            ? (new PruningSweep.Level(order.Count(m => m.Value <= p.Number("fixed_threshold")), p.Number("fixed_threshold")),
               $"fixed threshold: every BN channel with mask ≤ {p.Number("fixed_threshold"):0.###}")
            : (sweep.Points[sweep.ChosenIndex].Level, sweep.Rule);
        Prune(chosen);
        var findings = new Dictionary<string, object>
        {
            ["pruned_channels"] = chosen.Units,
            ["total_channels"] = masks.Count,
            ["masks_at_zero"] = masks.Count(m => m.Value <= 0f),
            ["masks_below_0.2"] = masks.Count(m => m.Value <= 0.2f),
            ["final_mask_loss"] = lastLoss,
        };
        return new DefenseOutcome(trajectory, new OperatingPoint(chosen.Units, rule), findings);
    }

    /// <summary>
    /// One iteration per batch (drawn with replacement, model in train mode): reset δ, ξ ~ U[−ε, ε]; anp_steps signed
    /// ascent steps on CE; then loss = α·CE(clean) + (1 − α)·CE(perturbed) drives one mask step, masks clipped to [0,1].
    /// Model weights are never updated.
    /// </summary>
    private static (IReadOnlyList<(BatchNormLayer Layer, int Channel, float Value)> Masks, double Loss) OptimiseMasks(ImageDataset train, DefenseParameters p, DefenseContext context)
    {
        using var copy = context.Model.Clone();
        var topology = ModelTopology.Discover(copy);
        var bnParameters = topology.BatchNorms.SelectMany(b => new[] { b.Weight, b.Bias }).ToHashSet();
        foreach (var parameter in copy.Module.parameters()) parameter.requires_grad = bnParameters.Contains(parameter);
        using var noisy = new BatchNormPerturbation(topology, p.Number("anp_eps"));
        var augment = p.Flag("augment") ? Augmentation.ForInput(copy.Input) : Augmentation.None;
        var (iterations, batchSize, alpha, eps, steps) = (p.Int("nb_iter"), Math.Min(p.Int("batch_size"), train.Count), p.Number("anp_alpha"), p.Number("anp_eps"), p.Int("anp_steps"));
        double lossSum = 0, lastLoss = 0;
        copy.Module.train();
        for (var iteration = 0; iteration < iterations; iteration++)
        {
            context.Cancellation.ThrowIfCancellationRequested();
            using var quiet = GcQuietRegion.Enter();
            using var scope = NewDisposeScope();
            var rows = Enumerable.Range(0, batchSize).Select(_ => (long)context.Random.Next(train.Count)).ToArray();
            using var index = tensor(rows);
            var x = copy.Prepare(augment.Apply(train.Images.index_select(0, index), context.Random));
            var y = copy.OnDevice(train.Labels.index_select(0, index));
            double robust = 0;
            if (eps > 0)
            {
                noisy.Reset(context.Random);
                for (var s = 0; s < steps; s++)
                {
                    noisy.Write(perturbed: true);
                    copy.Module.zero_grad();
                    nn.functional.cross_entropy(copy.Forward(x), y).backward();
                    noisy.NoiseStep(eps / steps);
                }

                noisy.Write(perturbed: true);
                copy.Module.zero_grad();
                var lossRob = nn.functional.cross_entropy(copy.Forward(x), y);
                (lossRob * (1 - alpha)).backward();
                noisy.AccumulateMaskGradient();
                robust = lossRob.item<float>();
            }

            noisy.Write(perturbed: false);
            copy.Module.zero_grad();
            var lossNat = nn.functional.cross_entropy(copy.Forward(x), y);
            (lossNat * alpha).backward();
            noisy.AccumulateMaskGradient();
            noisy.MaskStep(p.Number("mask_lr"), 0.9);
            lastLoss = alpha * lossNat.item<float>() + (1 - alpha) * robust;
            lossSum += lastLoss;
            if ((iteration + 1) % Math.Max(1, iterations / 20) == 0 || iteration + 1 == iterations)
            {
                context.Observer.Progress((iteration + 1.0) / iterations, $"iteration {iteration + 1}: loss {lossSum / (iteration + 1):0.####}");
            }
        }

        return (noisy.Values(), lastLoss);
    }
}
