using WebDefense.Core.Scanning;
using WebDefense.Core.Defenses.Blocks;
using WebDefense.Core.Defenses.Framework;

namespace WebDefense.Core.Defenses;

/// <summary>
/// FP, Fine-Pruning (Liu, Dolan-Gavitt, Garg, RAID 2018; BackdoorBench <c>defense/fp.py</c>, reference-algorithms
/// §5): rank the channels feeding the classifier (the pooled last-conv channels) by their mean activation on clean
/// data, prune the least active ones step by step while validation ACC holds, then fine-tune with the pruned
/// channels kept at zero. Pruning level and fine-tuning epoch are chosen on a validation slice of the clean data.
/// </summary>
public sealed class FpDefense : IDefense
{
    public string Name => "fp";
    public string Title => "FP (Fine-Pruning)";
    public string Description => "Prunes the last conv layer's channels that clean images leave least active (backdoor neurons tend to be dormant on clean data) as long as validation accuracy holds, then fine-tunes the pruned model on clean data.";
    public string Paper => "Liu, Dolan-Gavitt, Garg. Fine-Pruning: Defending Against Backdooring Attacks on Deep Neural Networks. RAID 2018. https://arxiv.org/abs/1805.12185";
    public DefenseNeeds Needs => DefenseNeeds.CleanData;
    public IReadOnlyList<string> Steps => ["split", "rank channels", "prune sweep", "fine-tune"];

    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Number("once_prune_ratio", 0.01, 0.001, 0.5, "Channels pruned per sweep step, as a share of the channels (rounded up: 6 of PreActResNet18's 512, 1 of SmallCnn's 64)."),
        ParameterSpec.Number("acc_ratio", 0.1, 0.0, 1.0, "Stop pruning before the validation ACC falls by this share of the unpruned model's (relative drop; the reference's 0.1)."),
        .. FtDefense.FineTuningParameters(epochs: 100),
        ScanAssistance.Scan,
        ScanAssistance.MaxValAsr,
    ];

    public DefenseOutcome Run(DefenseContext context)
    {
        var p = context.Parameters;
        var observer = context.Observer;
        observer.StepStarted(0, Steps.Count, Steps[0]);
        var (train, validation) = ValidationSlice.Holdout(context, p.Number("val_fraction"));
        using var trainData = train;
        using var validationData = validation;

        // Rank: mean activation of every classifier input channel on the clean training part, least active first.
        observer.StepStarted(1, Steps.Count, Steps[1]);
        using var mask = ClassifierInputMask.Discover(context.Model);
        var activations = mask.MeanActivations(context.Model, train, p.Int("batch_size"));
        var order = Enumerable.Range(0, mask.Features).OrderBy(c => activations[c]).ThenBy(c => c).ToArray();
        observer.Log($"{mask.Features} channels feed '{mask.Name}'; least active: {string.Join(", ", order.Take(5).Select(c => $"{c} ({activations[c]:0.####})"))}");

        // Sweep: 0, s, 2s, … channels (exactly that many: the reference's off-by-one pruned one fewer).
        observer.StepStarted(2, Steps.Count, Steps[2]);
        var step = (int)Math.Ceiling(mask.Features * p.Number("once_prune_ratio"));
        var levels = new List<PruningSweep.Level>();
        for (var n = 0; n <= mask.Features; n += step) levels.Add(new PruningSweep.Level(n, n == 0 ? 0 : activations[order[n - 1]]));
        var baseline = validation.Score(context.Model).Acc;
        var bound = p.Number("acc_ratio") * baseline;
        var sweep = PruningSweep.Run(levels, level => mask.PruneExactly(order.Take(level.Units)), () => validation.Score(context.Model), bound,
            "channels pruned", observer, context.Cancellation, context.MaxValidationAsr);
        var trajectory = sweep.Points.Select(x => new TrajectoryPoint(x.Level.Units, "channels pruned", x.Scores.Acc, x.Scores.Asr, x.Scores.Ra,
            x.Scores.CleanLoss, x.Level.Units == 0 ? "unpruned" : $"mean activation ≤ {x.Level.Threshold:0.####}")).ToList();
        var chosen = sweep.Points[sweep.ChosenIndex].Level.Units;
        mask.PruneExactly(order.Take(chosen));
        observer.Log($"pruned {chosen} of {mask.Features} channels");

        // Fine-tune with the pruned columns re-zeroed after every step.
        observer.StepStarted(3, Steps.Count, Steps[3]);
        var tuning = new ValidatedFineTuning
        {
            Model = context.Model, Train = train, Validation = validation, Options = FtDefense.Recipe(p, context),
            KeepBest = p.Choice("selection") == "best-val-acc", AfterStep = mask.Apply,
        }.Run(context);
        trajectory.AddRange(tuning.Points);

        var findings = new Dictionary<string, object>
        {
            ["pruned_channels"] = chosen,
            ["total_channels"] = mask.Features,
            ["pruned_layer"] = mask.Name,
            ["pruned_channel_ids"] = order.Take(chosen).ToArray(),
            ["chosen_epoch"] = tuning.ChosenEpoch,
            ["final_val_acc"] = tuning.Chosen.Acc,
        };
        if (tuning.Chosen.Asr is { } asr) findings["final_val_asr"] = asr;
        var rule = $"pruning: relative validation ACC drop within {p.Number("acc_ratio"):0.###} → {sweep.Rule}; fine-tuning: {tuning.Rule}";
        return new DefenseOutcome(trajectory, new OperatingPoint(chosen, rule), findings);
    }
}
