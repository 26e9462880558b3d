using WebDefense.Core.Scanning;
using TorchSharp;
using WebDefense.Core.Defenses.Blocks;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Models;
using static TorchSharp.torch;

namespace WebDefense.Core.Defenses;

/// <summary>
/// CLP, Channel Lipschitzness-based Pruning (Zheng et al., ECCV 2022; reference-algorithms §7). Data-free: for every
/// conv followed by a BN, the upper bound of each output channel's Lipschitz constant (UCLC) is computed from the
/// weights alone, and channels whose UCLC exceeds mean + u·std of their layer get γ and β set to zero. Clean data, when
/// given, only scores a sweep of u for the trajectory (and for the optional validation selection).
/// </summary>
public sealed class ClpDefense : IDefense
{
    public string Name => "clp";
    public string Title => "CLP (Channel Lipschitzness-based Pruning)";
    public string Description => "Data-free: computes an upper bound of each channel's Lipschitz constant from the weights and prunes the channels whose bound is an outlier in their layer (above mean + u·std); backdoor channels are unusually sensitive.";
    public string Paper => "Zheng, Zhang, Wang, Zhang, Jiang. Data-free Backdoor Removal based on Channel Lipschitzness. ECCV 2022. https://arxiv.org/abs/2208.03111";
    public DefenseNeeds Needs => DefenseNeeds.None;
    public IReadOnlyList<string> Steps => ["channel Lipschitz bounds", "u sweep", "select"];

    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Number("u", 3.0, 0.0, 100.0, "Prune channels whose UCLC exceeds mean + u·std of their layer (3 for CIFAR-10 in the reference, 5 for Tiny-ImageNet)."),
        ParameterSpec.Number("u_min", 0.0, 0.0, 100.0, "Smallest u of the trajectory sweep."),
        ParameterSpec.Number("u_max", 10.0, 0.0, 100.0, "Largest u of the trajectory sweep."),
        ParameterSpec.Int("u_num", 21, 2, 201, "Number of u values in the sweep (linspace(u_min, u_max, u_num), plus u itself)."),
        ParameterSpec.Choice("selection", "fixed-u", ["fixed-u", "acc-bound"], "fixed-u: prune with u (the reference, data-free); acc-bound: the smallest u of the sweep whose validation ACC, and that of every larger u, stays within max_acc_drop of the unpruned model's (needs clean data)."),
        ParameterSpec.Number("max_acc_drop", 0.03, 0.0, 1.0, "Largest validation ACC drop allowed by the acc-bound selection."),
        ParameterSpec.Choice("pairing", "traced", ["traced", "module-order"], "traced: a BN is paired with the conv whose output it normalises directly (BNs that see a residual sum are skipped); module-order: each BN with the most recent conv before it (the reference; TorchScript models always use it)."),
        ScanAssistance.Scan,
        ScanAssistance.MaxValAsr,
    ];

    public DefenseOutcome Run(DefenseContext context)
    {
        var p = context.Parameters;
        var observer = context.Observer;
        var hasData = context.CleanData.Count > 0;
        if (p.Choice("selection") == "acc-bound" && !hasData)
        {
            throw new DefenseInputException("CLP's acc-bound selection needs clean data; use selection = fixed-u to run data-free.");
        }

        // Step 1: UCLC of every channel of every conv→BN pair (weights only).
        observer.StepStarted(0, Steps.Count, Steps[0]);
        var topology = ModelTopology.Discover(context.Model);
        var pairs = ChannelLipschitz.Pairs(context.Model, topology, p.Choice("pairing"), out var pairing);
        if (pairing != p.Choice("pairing"))
        {
            // Said, not silently swapped: a TorchScript model has no traced topology to pair by.
            observer.Log($"pairing '{p.Choice("pairing")}' was asked for, but this TorchScript model cannot be traced: its BNs are paired in module order ('{pairing}') instead");
        }
        if (pairs.Count == 0)
        {
            throw new DefenseInputException("CLP needs convolutions followed by batch-norm layers, and this model has none.");
        }

        var bounds = pairs.Select(x => ChannelLipschitz.UpperBounds(x.Conv.Weight, x.Norm.Weight, x.RunningVar)).ToList();
        int[][] PrunedAt(double u) => bounds.Select(b => ChannelLipschitz.Outliers(b, u).ToArray()).ToArray();

        // Step 2: sweep u from large (little pruning) to small; the pruned set only grows as u falls.
        observer.StepStarted(1, Steps.Count, Steps[1]);
        using var original = StateDict.FromModule(context.Model.Module);
        void Prune(PruningSweep.Level level)
        {
            original.CopyInto(context.Model.Module);
            if (level.Units > 0) ZeroChannels(pairs, PrunedAt(level.Threshold));
        }

        var us = Enumerable.Range(0, p.Int("u_num")).Select(i => p.Number("u_min") + i * (p.Number("u_max") - p.Number("u_min")) / (p.Int("u_num") - 1))
            .Append(p.Number("u")).Select(u => Math.Round(u, 9)).Distinct().OrderDescending().ToList();
        var levels = us.Select(u => new PruningSweep.Level(PrunedAt(u).Sum(c => c.Length), u)).Prepend(new PruningSweep.Level(0, double.PositiveInfinity)).ToList();
        var trajectory = new List<TrajectoryPoint>();
        string Note(PruningSweep.Level level) => double.IsPositiveInfinity(level.Threshold) ? "unpruned" : $"u = {level.Threshold:0.###}";
        PruningSweep.Result? sweep = null;
        if (hasData)
        {
            using var validation = ValidationSlice.All(context);
            sweep = PruningSweep.Run(levels, Prune, () => validation.Score(context.Model), p.Number("max_acc_drop"), "channels pruned", observer, context.Cancellation, context.MaxValidationAsr);
            trajectory.AddRange(sweep.Points.Select(x => new TrajectoryPoint(x.Level.Units, "channels pruned", x.Scores.Acc, x.Scores.Asr, x.Scores.Ra, x.Scores.CleanLoss, Note(x.Level))));
        }
        else
        {
            trajectory.AddRange(levels.Select(l => new TrajectoryPoint(l.Units, "channels pruned", Note: Note(l))));
            trajectory.ForEach(observer.Point);
        }

        // Step 3: the reference's fixed u (data-free), or the validation rule.
        observer.StepStarted(2, Steps.Count, Steps[2]);
        var (chosen, rule) = p.Choice("selection") == "acc-bound"
            ? (sweep!.Points[sweep.ChosenIndex].Level, $"smallest u of the sweep ({Note(sweep.Points[sweep.ChosenIndex].Level)}): " + sweep.Rule)
            : (levels.First(l => l.Threshold == Math.Round(p.Number("u"), 9)), $"fixed u = {p.Number("u"):0.###} (the reference's data-free rule: prune channels with UCLC > mean + u·std of their layer)");
        Prune(chosen);
        var pruned = double.IsPositiveInfinity(chosen.Threshold) ? [] : PrunedAt(chosen.Threshold);
        var findings = new Dictionary<string, object>
        {
            ["pairing"] = pairing,
            ["pairing_requested"] = p.Choice("pairing"),
            ["paired_layers"] = pairs.Count,
            ["total_channels"] = pairs.Sum(x => x.Norm.Channels),
            ["pruned_channels"] = chosen.Units,
            ["chosen_u"] = double.IsPositiveInfinity(chosen.Threshold) ? "none (unpruned)" : chosen.Threshold,
            ["pruned_per_layer"] = pairs.Select((x, i) => new KeyValuePair<string, int>(x.Norm.Name, pruned.Length == 0 ? 0 : pruned[i].Length))
                .Where(x => x.Value > 0).ToDictionary(x => x.Key, x => x.Value),
            ["max_uclc_per_layer"] = pairs.Select((x, i) => new KeyValuePair<string, double>(x.Norm.Name, bounds[i].Max())).ToDictionary(),
        };
        return new DefenseOutcome(trajectory, new OperatingPoint(chosen.Units, rule), findings);
    }

    /// <summary>Sets γ_k and β_k of the chosen channels of each pair's BN to zero (the channel then outputs 0 before the activation).</summary>
    private static void ZeroChannels(IReadOnlyList<ConvNormPair> pairs, int[][] channels)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        for (var i = 0; i < pairs.Count; i++)
        {
            foreach (var k in channels[i])
            {
                pairs[i].Norm.Weight[k].zero_();
                pairs[i].Norm.Bias[k].zero_();
            }
        }
    }
}
