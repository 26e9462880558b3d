using System.Diagnostics;
using WebDefense.Core.Data;
using WebDefense.Core.Data.Triggers;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Evaluation;
using WebDefense.Core.Models;
using static TorchSharp.torch;

namespace WebDefense.Core.Scanning;

/// <summary>One label's row of a scan: its reconstructed trigger, the mask norm and anomaly index, and the trigger's ASR.</summary>
public sealed record LabelScan(int Label, double MaskNorm, double AnomalyIndex, bool Flagged, bool ReachedThreshold, double InversionAsr,
    double? HoldoutAsr, int Epochs, MaskTrigger Trigger);

/// <summary>
/// What a scan concluded from the model and clean data alone: whether a backdoor is suspected (some label's anomaly index
/// above <see cref="Threshold"/> and a mask at most a share of the <see cref="Median"/> mask, in pixels), towards which
/// label(s), and the reconstructed trigger's ASR on held-out clean images (<see cref="EstimatedAsr"/>, images the
/// inversion never saw). <see cref="Mad"/> is in the anomaly index's units (log or linear).
/// </summary>
public sealed record ScanResult(bool Suspected, int? TargetLabel, IReadOnlyList<int> FlaggedLabels, double Median, double Mad, double Threshold,
    double? EstimatedAsr, IReadOnlyList<LabelScan> Labels, int InversionImages, int HoldoutImages, double Seconds)
{
    /// <summary>The reconstructed trigger of the suspected target, null when nothing was flagged.</summary>
    public MaskTrigger? Trigger => TargetLabel is { } t ? Labels.First(l => l.Label == t).Trigger : null;

    /// <summary>The clean images held out from the inversion (row indices into the scanned data), for later estimates.</summary>
    public long[] HoldoutRows { get; init; } = [];

    /// <summary>A flagged label's mask is at most this share of the median mask.</summary>
    public double MaxNormRatio { get; init; } = 1;

    public string Summary => Suspected
        ? $"backdoor suspected towards label {TargetLabel} (anomaly index {Labels.First(l => l.Label == TargetLabel).AnomalyIndex:0.00} > {Threshold:0.#}; " +
          $"its reconstructed trigger covers {Labels.First(l => l.Label == TargetLabel).MaskNorm:0.#} pixels" +
          (EstimatedAsr is { } e ? $" and sends {e:P1} of held-out clean images to it)" : ")")
        : $"no backdoor found: no label's trigger is both an outlier (anomaly index above {Threshold:0.#}) and small (largest index {Labels.Max(l => l.AnomalyIndex):0.00}, label {Labels.MaxBy(l => l.AnomalyIndex)!.Label}, mask {Labels.MaxBy(l => l.AnomalyIndex)!.MaskNorm:0.#} px against a median of {Median:0.#} px)";
}

/// <summary>
/// The backdoor scan: Neural Cleanse (Wang et al., IEEE S&amp;P 2019) on the defender's clean data. Per label, invert the
/// smallest trigger that sends clean images of the other labels to it (<see cref="TriggerInversion"/>); flag labels whose
/// mask norm is a low outlier by the MAD anomaly index (<see cref="AnomalyIndex"/>); measure each reconstructed trigger's
/// ASR on held-out clean images. The anomaly index is taken of the norms' logarithms by default (the authors': of the
/// norms). A label is flagged when its anomaly index exceeds the threshold AND its mask is at most
/// <c>max_norm_ratio</c> of the median (our addition against easy-to-reach labels of clean models). Choices and
/// constants: docs/defenses/scan.md.
/// </summary>
public sealed class BackdoorScan : IDefenseDescription
{
    public const string ScanName = "scan";

    public string Name => ScanName;
    public string Title => "Backdoor scan (Neural Cleanse)";
    public string Description => "Looks for a backdoor from the model and clean data alone: for every label it rebuilds the smallest trigger that sends clean images to that label, and flags labels whose trigger is unusually small. Reports the suspected target, the reconstructed trigger and its success rate on held-out clean images.";
    public string Paper => "Wang, Yao, Shan, Li, Viswanath, Zheng, Zhao. Neural Cleanse: Identifying and Mitigating Backdoor Attacks in Neural Networks. IEEE S&P 2019. https://doi.org/10.1109/SP.2019.00031";
    public DefenseNeeds Needs => DefenseNeeds.CleanData;
    public IReadOnlyList<string> Steps => ["invert triggers", "anomaly index", "estimate ASR"];

    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Int("steps", 300, 10, 100000, "Optimiser steps per label (rounded up to whole passes over the clean images of the other labels); stops earlier once the mask norm stalls."),
        ParameterSpec.Int("batch_size", 32, 1, 4096, "Mini-batch size of the inversion (the authors': 32)."),
        ParameterSpec.Number("learning_rate", 0.1, 1e-4, 10.0, "Adam learning rate of the mask and pattern (β 0.5, 0.9)."),
        ParameterSpec.Number("init_cost", 1e-3, 0.0, 1.0, "Initial weight λ of the mask's L1 norm; raised while the trigger succeeds, lowered while it fails."),
        ParameterSpec.Number("attack_success", 0.99, 0.5, 1.0, "Share of images that must go to the label for a trigger to count."),
        ParameterSpec.Choice("anomaly_scale", "log", ["log", "linear"], "log: the anomaly index of the logarithms of the mask norms (a trigger 20× smaller than the others stands out however much the others vary); linear: of the norms themselves, as the authors."),
        ParameterSpec.Number("anomaly_threshold", AnomalyIndex.DefaultThreshold, 0.5, 10.0, "A label whose anomaly index exceeds this is flagged (the authors': 2, about 95% confidence for normal data)."),
        ParameterSpec.Number("max_norm_ratio", 0.25, 0.01, 1.0, "A flagged label's mask must also be at most this share of the median mask (1 = the anomaly index alone, as the authors). Guards against labels that are merely easy to reach."),
        ParameterSpec.Number("holdout_fraction", 0.2, 0.05, 0.5, "Share of the clean data kept out of the inversion to measure the reconstructed triggers' ASR."),
    ];

    public static ScanResult Run(Classifier model, ImageDataset clean, DefenseParameters p, Random random, IDefenseObserver observer,
        CancellationToken cancellation, int stepOffset = 0, int stepCount = 3)
    {
        var watch = Stopwatch.StartNew();
        if (model.NumClasses < 3)
        {
            throw new DefenseInputException("the backdoor scan compares the labels' trigger sizes and needs a model with at least 3 classes");
        }

        var labels = clean.Labels.data<long>().ToArray();
        var (inversionRows, holdoutRows) = DataSplits.Holdout(labels, p.Number("holdout_fraction"), random);
        if (inversionRows.Length == 0)
        {
            throw new DefenseInputException("the backdoor scan needs clean images to rebuild triggers from");
        }

        var options = new InversionOptions
        {
            Steps = p.Int("steps"), BatchSize = p.Int("batch_size"), LearningRate = p.Number("learning_rate"),
            InitCost = p.Number("init_cost"), AttackSuccessThreshold = p.Number("attack_success"),
        };
        var threshold = p.Number("anomaly_threshold");
        var maxRatio = p.Number("max_norm_ratio");

        observer.StepStarted(stepOffset, stepCount, "invert triggers");
        using var inversion = clean.Subset(inversionRows);
        using var holdout = clean.Subset(holdoutRows);
        var inverted = new List<InvertedTrigger>();
        var inversionLabels = inversion.Labels.data<long>().ToArray();
        for (var label = 0; label < model.NumClasses; label++)
        {
            cancellation.ThrowIfCancellationRequested();
            var others = Enumerable.Range(0, inversionLabels.Length).Where(i => inversionLabels[i] != label).Select(i => (long)i).ToArray();
            using var scope = NewDisposeScope();
            using var index = tensor(others);
            var unit = inversion.Images.index_select(0, index).to_type(ScalarType.Float32).div_(255f);
            var current = label;
            var result = TriggerInversion.Invert(model, unit, label, options, random,
                (epoch, epochs, asr, norm) => observer.Progress((current + (epoch + 1.0) / epochs) / model.NumClasses,
                    $"label {current}: epoch {epoch + 1}, ASR {asr:P1}, mask {norm:0.#} px"), cancellation);
            inverted.Add(result);
            observer.Log($"label {label}: mask {result.MaskNorm:0.##} px after {result.EpochsRun} epochs, inversion ASR {result.InversionAsr:P1}" +
                         (result.ReachedThreshold ? string.Empty : $" (never reached {options.AttackSuccessThreshold:P0})"));
        }

        observer.StepStarted(stepOffset + 1, stepCount, "anomaly index");
        var (anomaly, medianNorm, flagged) = Flag(inverted.Select(t => t.MaskNorm).ToList(), inverted.Select(t => t.ReachedThreshold).ToList(),
            p.Choice("anomaly_scale") == "log", threshold, maxRatio);
        observer.Log($"mask norms: median {medianNorm:0.##} px; MAD {anomaly.Mad:0.###} ({p.Choice("anomaly_scale")} scale); anomaly indices " +
                     string.Join(", ", anomaly.Indices.Select((a, i) => $"{i}: {a:0.00}")));

        observer.StepStarted(stepOffset + 2, stepCount, "estimate ASR");
        var rows = new List<LabelScan>();
        foreach (var t in inverted)
        {
            rows.Add(new LabelScan(t.Label, t.MaskNorm, anomaly.Indices[t.Label], flagged.Contains(t.Label), t.ReachedThreshold, t.InversionAsr,
                EstimateAsr(model, holdout, t.Trigger, t.Label), t.EpochsRun, t.Trigger));
        }

        int? target = flagged.Count > 0 ? flagged[0] : null;
        var result2 = new ScanResult(target is not null, target, flagged, medianNorm, anomaly.Mad, threshold,
            target is { } tl ? rows[tl].HoldoutAsr : null, rows, inversion.Count, holdout.Count, watch.Elapsed.TotalSeconds)
        {
            HoldoutRows = holdoutRows,
            MaxNormRatio = maxRatio,
        };
        observer.Log("scan: " + result2.Summary);
        return result2;
    }

    /// <summary>
    /// The flag rule on the labels' mask norms (pixels, in label order): the anomaly index (of the logarithms when
    /// <paramref name="logScale"/>), and the labels whose inversion succeeded, whose index exceeds
    /// <paramref name="threshold"/> and whose mask is at most <paramref name="maxRatio"/> of the median mask, most anomalous first.
    /// </summary>
    public static (AnomalyIndex.Result Anomaly, double MedianNorm, IReadOnlyList<int> Flagged) Flag(IReadOnlyList<double> norms, IReadOnlyList<bool> reached,
        bool logScale, double threshold, double maxRatio)
    {
        var anomaly = AnomalyIndex.Compute(logScale ? norms.Select(n => Math.Log(Math.Max(n, 1e-6))).ToList() : norms);
        var median = AnomalyIndex.Median(norms);
        var flagged = Enumerable.Range(0, norms.Count).Where(i => reached[i] && anomaly.Indices[i] > threshold && norms[i] <= maxRatio * median)
            .OrderByDescending(i => anomaly.Indices[i]).ToList();
        return (anomaly, median, flagged);
    }

    /// <summary>
    /// The share of <paramref name="clean"/> images NOT of <paramref name="label"/> that the model sends to it once stamped with
    /// <paramref name="trigger"/>; null when there are none.
    /// </summary>
    public static double? EstimateAsr(Classifier model, ImageDataset clean, TriggerSpec trigger, int label)
    {
        if (clean.Labels.data<long>().All(l => l == label))
        {
            return null;
        }

        // The same set and metric as the real ASR: BackdoorBench's bd-test construction with the label as the target.
        using var stamped = BackdoorTestSet.Build(clean, trigger, label);
        return Evaluator.AttackMetrics(Evaluator.Predict(model, stamped.Data.Images), stamped.Data.Labels.data<long>().ToArray(), label).Asr;
    }
}
