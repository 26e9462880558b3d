using WebDefense.Core.Scanning;
using WebDefense.Core.Defenses.Blocks;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Training;

namespace WebDefense.Core.Defenses;

/// <summary>
/// FT, plain fine-tuning on the defender's clean data (BackdoorBench <c>defense/ft.py</c>; reference-algorithms
/// §4): SGD 0.01, momentum 0.9, wd 5e-4, cosine T_max 100 stepped per epoch, batch 256, training augmentation.
/// The reference returns the last epoch; by default we keep the epoch with the best validation ACC on a
/// held-out slice of the clean data (docs/defenses/baselines-ft.md).
/// </summary>
public sealed class FtDefense : IDefense
{
    public string Name => "ft";
    public string Title => "FT (fine-tuning on clean data)";
    public string Description => "Fine-tunes the model on the defender's clean data; the backdoor fades as the weights move. The simplest baseline.";
    public string Paper => "Baseline of BackdoorBench: Wu, Chen, Zhu, Wei, Li, Shen, Liu. BackdoorBench: A Comprehensive Benchmark of Backdoor Learning. NeurIPS 2022 Datasets and Benchmarks. https://arxiv.org/abs/2206.12654";
    public DefenseNeeds Needs => DefenseNeeds.CleanData;
    public IReadOnlyList<string> Steps => ["split", "fine-tune"];

    public IReadOnlyList<ParameterSpec> Parameters { get; } = [.. FineTuningParameters(epochs: 100), ScanAssistance.Scan, ScanAssistance.MaxValAsr];

    /// <summary>The FT recipe's tunables, shared with FP and FT-SAM (BackdoorBench's defaults).</summary>
    internal static ParameterSpec[] FineTuningParameters(int epochs) =>
    [
        ParameterSpec.Int("epochs", epochs, 1, 1000, "Fine-tuning epochs (reference: 100 on 2,500 CIFAR-10 images). The cosine schedule keeps T_max = 100 epochs, as the reference, whatever the number of epochs."),
        ParameterSpec.Number("lr", 0.01, 1e-6, 1.0, "SGD learning rate (momentum 0.9, weight decay 5e-4)."),
        ParameterSpec.Int("batch_size", 256, 1, 4096, "Mini-batch size (the last, smaller batch is kept)."),
        ParameterSpec.Number("val_fraction", 0.1, 0.01, 0.5, "Share of the clean data held out (stratified) to score every epoch and choose the model."),
        ParameterSpec.Choice("selection", "best-val-acc", ["best-val-acc", "last"], "best-val-acc: the epoch with the highest validation ACC (ties → later epoch); last: the last epoch, as the reference."),
        ParameterSpec.Flag("augment", true, "Random-crop (and, for colour images, flip) augmentation of the clean data, as the reference does."),
    ];

    internal static SgdOptions Recipe(DefenseParameters p, Framework.DefenseContext context) => new()
    {
        LearningRate = p.Number("lr"), Momentum = 0.9, WeightDecay = 5e-4, BatchSize = p.Int("batch_size"), Epochs = p.Int("epochs"),
        DropLast = false, Schedule = LearningRateSchedule.Cosine(100),
        Augment = p.Flag("augment") ? Augmentation.ForInput(context.Model.Input) : Augmentation.None,
    };

    public DefenseOutcome Run(DefenseContext context)
    {
        var p = context.Parameters;
        context.Observer.StepStarted(0, Steps.Count, Steps[0]);
        var (train, validation) = ValidationSlice.Holdout(context, p.Number("val_fraction"));
        using var trainData = train;
        using var validationData = validation;
        context.Observer.Log($"{train.Count} training and {validation.Clean.Count} validation images");

        context.Observer.StepStarted(1, Steps.Count, Steps[1]);
        var result = new ValidatedFineTuning
        {
            Model = context.Model, Train = train, Validation = validation, Options = Recipe(p, context),
            KeepBest = p.Choice("selection") == "best-val-acc",
        }.Run(context);

        return result.Outcome(("train_samples", train.Count), ("val_samples", validation.Clean.Count));
    }
}
