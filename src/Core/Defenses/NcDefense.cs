using WebDefense.Core.Data;
using WebDefense.Core.Defenses.Blocks;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Scanning;
using static TorchSharp.torch;

namespace WebDefense.Core.Defenses;

/// <summary>
/// Neural Cleanse's mitigation by unlearning (Wang et al., IEEE S&amp;P 2019, §VI-C; BackdoorBench <c>defense/nc.py</c>,
/// <c>config/defense/nc/cifar10.yaml</c>): fine-tune on the defender's clean data in which a share of the images
/// (<c>unlearning_ratio</c>; the reference's 20%, here 50% by default, docs/defenses/nc.md) are replaced by copies carrying the trigger with their TRUE labels, so the model learns
/// to ignore the trigger. BackdoorBench trains these data with its FT recipe (SGD lr 0.01, cosine, batch 256, augmentation),
/// and so does this file. The trigger is the scan's reconstruction when the user gives no backdoor samples, or the user's.
/// </summary>
public sealed class NcDefense : IDefense
{
    public string Name => "nc";
    public string Title => "NC unlearning (Neural Cleanse: fine-tune with the trigger and the true labels)";
    public string Description => "Fine-tunes on the clean data with half of the images stamped with the trigger and kept under their true labels, so the model unlearns the trigger. Without a trigger of yours, the scan reconstructs it from the clean data first.";
    public string Paper => "Wang, Yao, Shan, Li, Viswanath, Zheng, Zhao. Neural Cleanse: Identifying and Mitigating Backdoor Attacks in Neural Networks. IEEE S&P 2019. https://doi.org/10.1109/SP.2019.00031";
    public DefenseNeeds Needs => DefenseNeeds.CleanData | DefenseNeeds.BackdoorSamples;
    public IReadOnlyList<string> Steps => ["split", "unlearn"];

    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Number("unlearning_ratio", 0.5, 0.01, 1.0, "Share of the training images replaced by their copies with the trigger, true labels kept. The paper and BackdoorBench use 0.2 of 2,500+ images; with a few hundred images 0.5 unlearns a reconstructed trigger more reliably (docs/defenses/nc.md)."),
        .. FtDefense.FineTuningParameters(epochs: 100),
        ScanAssistance.Scan,
        ScanAssistance.MaxValAsr,
    ];

    public DefenseOutcome Run(DefenseContext context)
    {
        var p = context.Parameters;
        var backdoor = context.Backdoor ?? throw new InvalidOperationException(
            "NC unlearning needs backdoor samples: give a trigger spec or triggered images, or leave the scan on to reconstruct the trigger.");
        context.Observer.StepStarted(0, Steps.Count, Steps[0]);
        var (trainRows, valRows) = ValidationSlice.HoldoutRows(context, p.Number("val_fraction"));
        using var validation = ValidationSlice.Build(context, valRows);
        using var train = WithTrigger(context, backdoor, trainRows, p.Number("unlearning_ratio"), out var stampedCount);
        context.Observer.Log($"{train.Count} training images ({stampedCount} of them with the trigger, true labels) and {validation.Clean.Count} validation images");

        context.Observer.StepStarted(1, Steps.Count, Steps[1]);
        var result = new ValidatedFineTuning
        {
            Model = context.Model, Train = train, Validation = validation, Options = FtDefense.Recipe(p, context),
            KeepBest = p.Choice("selection") == "best-val-acc", Phase = "unlearning",
        }.Run(context);

        return result.Outcome(("train_samples", train.Count), ("triggered_samples", stampedCount));
    }

    /// <summary>
    /// The training rows with a seeded share replaced by triggered images: their own triggered copies when the backdoor
    /// samples are paired with the clean data (the reference stamps the chosen clean images), else a draw of the triggered images.
    /// </summary>
    private static ImageDataset WithTrigger(DefenseContext context, BackdoorSamples backdoor, long[] trainRows, double ratio, out int stampedCount)
    {
        var order = trainRows.ToArray();
        context.Random.Shuffle(order);
        stampedCount = Math.Clamp((int)(order.Length * ratio), 1, order.Length);
        long[] triggeredRows;
        if (backdoor.PairedWithClean)
        {
            triggeredRows = order.Take(stampedCount).ToArray();
        }
        else
        {
            // Uploaded triggered images of other images: as many as the ratio asks (or as there are) replace clean ones.
            var all = Enumerable.Range(0, backdoor.Images.Count).Select(i => (long)i).ToArray();
            context.Random.Shuffle(all);
            triggeredRows = all.Take(Math.Min(stampedCount, all.Length)).ToArray();
            stampedCount = triggeredRows.Length;
        }

        var cleanRows = order.Skip(stampedCount).ToArray();
        using var clean = context.CleanData.Subset(cleanRows);
        using var triggered = backdoor.Images.Subset(triggeredRows);
        return new ImageDataset(cat([clean.Images, triggered.Images], 0), cat([clean.Labels, triggered.Labels], 0));
    }
}
