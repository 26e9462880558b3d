using WebDefense.Core.Scanning;
using WebDefense.Core.Defenses.Blocks;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Evaluation;
using WebDefense.Core.Models;
using WebDefense.Core.Training;

namespace WebDefense.Core.Defenses;

/// <summary>
/// TSBD, Two-Stage Backdoor Defense (Lin et al., NeurIPS 2024; reference-algorithms §12). Stage 1: unlearn a copy on
/// clean data, rank conv filters by neuron weight change (NWC), and zero the largest-change weights of the top
/// neurons in the ORIGINAL model. Stage 2: activeness-aware fine-tuning with gradient-norm regulation. The reference
/// sweeps the neuron ratio n without choosing; here each n is scored on a validation slice and chosen by an ACC bound.
/// </summary>
public sealed class TsbdDefense : IDefense
{
    public string Name => "tsbd";
    public string Title => "TSBD (Two-Stage Backdoor Defense)";
    public string Description => "Unlearns clean data to find the neurons whose weights change most (they carry the backdoor), zeroes their most-changed weights, then fine-tunes with a gradient-norm penalty that keeps the backdoor from coming back.";
    public string Paper => "Lin, Liu, Wei, Xiong. Unveiling and Mitigating Backdoor Vulnerabilities based on Unlearning Weight Changes and Backdoor Activeness. NeurIPS 2024. https://arxiv.org/abs/2405.20291";
    public DefenseNeeds Needs => DefenseNeeds.CleanData;
    public IReadOnlyList<string> Steps => ["clean unlearning", "neuron weight change", "re-initialise + fine-tune sweep", "select"];

    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Number("lr_un", 1e-4, 1e-6, 1.0, "SGD learning rate of clean unlearning (momentum 0.9, no weight decay)."),
        ParameterSpec.Number("clean_threshold", 0.10, 0.0, 1.0, "Stop unlearning once the clean training accuracy (eval mode) is at or below this."),
        ParameterSpec.Int("unlearning_epochs", 1000, 1, 10000, "Maximum unlearning epochs."),
        ParameterSpec.Number("m", 0.7, 0.0, 1.0, "Fraction of the chosen neurons' weights (largest |ΔW| first) set to zero."),
        ParameterSpec.Choice("reinit_scope", "pooled", ["pooled", "per-neuron"], "pooled: the largest ⌈m·K⌉ changes among all K weights of the chosen neurons (the reference); per-neuron: ⌈m·k⌉ in each neuron of k weights."),
        ParameterSpec.Number("lr_ft", 0.01, 1e-5, 1.0, "SGD learning rate of the activeness-aware fine-tuning (momentum 0.9, no weight decay, no schedule)."),
        ParameterSpec.Int("ft_epochs", 21, 0, 500, "Fine-tuning epochs after re-initialisation (the reference runs ft_epoch + 1 = 21)."),
        ParameterSpec.Number("r", 0.05, 0.0, 10.0, "Radius of the gradient-norm probe θ' = θ + r·g/‖g‖."),
        ParameterSpec.Number("alpha", 0.7, 0.0, 1.0, "Gradient mix (1 − α)·∇CE(θ) + α·∇CE(θ')."),
        ParameterSpec.Choice("norm", "per-tensor", ["per-tensor", "global"], "per-tensor: each parameter tensor's probe is normalised by its own gradient norm (the reference code); global: by the norm of the whole gradient."),
        ParameterSpec.Int("batch_size", 256, 1, 4096, "Mini-batch size."),
        ParameterSpec.Number("val_fraction", 0.1, 0.01, 0.5, "Share of the clean data held out to choose the neuron ratio."),
        ParameterSpec.Choice("neuron_ratios", "0.01,0.05,0.1,0.15,0.2,0.25,0.3,0.4,0.5,0.7,0.9",
            ["0.01,0.05,0.1,0.15,0.2,0.25,0.3,0.4,0.5,0.7,0.9", "0.01,0.05,0.1,0.2,0.3,0.5", "0.05,0.1,0.2"], "Neuron ratios n of the sweep (the reference's list, or shorter ones)."),
        ParameterSpec.Number("max_acc_drop", 0.03, 0.0, 1.0, "Largest validation ACC drop (vs the original model) allowed when choosing n."),
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
        using var validationData = validation;
        var augment = p.Flag("augment") ? Augmentation.ForInput(context.Model.Input) : Augmentation.None;
        var trajectory = new List<TrajectoryPoint>();
        var findings = new Dictionary<string, object>();

        // Stage 1a: clean unlearning (gradient ascent) of a copy until its clean accuracy is ≤ clean_threshold.
        observer.StepStarted(0, Steps.Count, Steps[0]);
        using var unlearned = context.Model.Clone();
        var history = new TrainingLoop
        {
            Model = unlearned, Data = train, Maximize = true,
            Options = new SgdOptions { LearningRate = p.Number("lr_un"), Momentum = 0.9, WeightDecay = 0, BatchSize = p.Int("batch_size"), Epochs = p.Int("unlearning_epochs"), DropLast = false, Augment = augment },
            Validate = () => Evaluator.Accuracy(unlearned, train),
            StopWhen = e => e.Validation <= p.Number("clean_threshold"),
            OnEpoch = e =>
            {
                var point = new TrajectoryPoint(e.Epoch + 1, "unlearning epoch", e.Validation, Loss: e.Loss, Phase: "unlearn");
                trajectory.Add(point);
                observer.Point(point);
                observer.Progress(Math.Max((e.Epoch + 1.0) / p.Int("unlearning_epochs"), 1 - e.Validation!.Value), $"unlearning epoch {e.Epoch + 1}: clean ACC {e.Validation:P1}");
            },
        }.Run(context.Random, context.Cancellation);
        findings["unlearning_epochs"] = history.Count;
        findings["unlearned_clean_acc"] = history[^1].Validation!.Value;
        findings["unlearning_reached_threshold"] = history[^1].Validation <= p.Number("clean_threshold");

        // Stage 1b: neuron weight change of every conv filter except shortcut / downsample projections.
        observer.StepStarted(1, Steps.Count, Steps[1]);
        var topology = ModelTopology.Discover(context.Model);
        using var nwc = NeuronWeightChange.Measure(topology, ModelTopology.Discover(unlearned),
            c => !c.Name.Contains("shortcut", StringComparison.Ordinal) && !c.Name.Contains("downsample", StringComparison.Ordinal));
        findings["neurons"] = nwc.Ranked.Count;
        findings["top_neurons"] = nwc.Ranked.Take(10).Select(n => $"{n.Conv}[{n.Filter}] {n.Change:0.####}").ToArray();

        // Stage 1c + 2 for every n: zero re-initialisation of the ORIGINAL model, then activeness-aware fine-tuning.
        observer.StepStarted(2, Steps.Count, Steps[2]);
        using var original = StateDict.FromModule(context.Model.Module);
        var ratios = p.Choice("neuron_ratios").Split(',').Select(s => double.Parse(s, System.Globalization.CultureInfo.InvariantCulture)).ToList();
        var levels = ratios.Select(n => new PruningSweep.Level((int)(nwc.Ranked.Count * n), n)).Prepend(new PruningSweep.Level(0, 0)).ToList();
        var zeroed = new Dictionary<double, int>();
        void Reinitialise(PruningSweep.Level level)
        {
            original.CopyInto(context.Model.Module);
            if (level.Threshold == 0) return; // the unchanged model, the baseline of the bound
            zeroed[level.Threshold] = nwc.ZeroReinitialize(topology, level.Units, p.Number("m"), p.Choice("reinit_scope") == "pooled");
            var regulation = new GradientNormRegularization(p.Number("r"), p.Number("alpha"), p.Choice("norm") == "per-tensor");
            new TrainingLoop
            {
                Model = context.Model, Data = train, Loss = regulation.Loss, AfterStep = () => regulation.AfterStep(context.Model),
                Options = new SgdOptions { LearningRate = p.Number("lr_ft"), Momentum = 0.9, WeightDecay = 0, BatchSize = p.Int("batch_size"), Epochs = p.Int("ft_epochs"), DropLast = false, Augment = augment },
            }.Run(context.Random, context.Cancellation);
        }

        // The sweep keeps the states of the unbroken run of levels within the ACC bound: the rule chooses one of them
        // (the last, or with a validation ASR the smallest that meets the ASR bound).
        var kept = new List<StateDict>();
        var unbroken = true;
        double? baseline = null;
        try
        {
            var sweep = PruningSweep.Run(levels, Reinitialise, () =>
            {
                var scores = validation.Score(context.Model);
                baseline ??= scores.Acc;
                unbroken &= baseline - scores.Acc <= p.Number("max_acc_drop");
                if (unbroken)
                {
                    kept.Add(StateDict.FromModule(context.Model.Module));
                }

                return scores;
            }, p.Number("max_acc_drop"), "neurons re-initialised", observer, context.Cancellation, context.MaxValidationAsr);
            trajectory.AddRange(sweep.Points.Select(x => new TrajectoryPoint(x.Level.Units, "neurons re-initialised", x.Scores.Acc, x.Scores.Asr, x.Scores.Ra, x.Scores.CleanLoss,
                x.Level.Threshold == 0 ? "original model" : $"n = {x.Level.Threshold:0.###}, {zeroed[x.Level.Threshold]} weights zeroed, {p.Int("ft_epochs")} fine-tuning epochs")));

            // Select on validation data only and leave the model at the chosen point.
            observer.StepStarted(3, Steps.Count, Steps[3]);
            if (sweep.ChosenIndex >= kept.Count) throw new InvalidOperationException($"sweep chose level {sweep.ChosenIndex} but only {kept.Count} levels were kept");
            kept[sweep.ChosenIndex].CopyInto(context.Model.Module);
            var chosen = sweep.Points[sweep.ChosenIndex].Level;
            findings["chosen_n"] = chosen.Threshold;
            findings["reinitialised_neurons"] = chosen.Units;
            findings["zeroed_weights"] = chosen.Threshold == 0 ? 0 : zeroed[chosen.Threshold];
            var rule = "neuron ratio n " + (chosen.Threshold == 0 ? "none (the original model)" : $"{chosen.Threshold:0.###}") + ": " + sweep.Rule;
            return new DefenseOutcome(trajectory, new OperatingPoint(chosen.Units, rule), findings);
        }
        finally
        {
            kept.ForEach(k => k.Dispose());
        }
    }
}
