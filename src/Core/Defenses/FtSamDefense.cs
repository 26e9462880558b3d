using WebDefense.Core.Scanning;
using WebDefense.Core.Defenses.Blocks;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Models;
using WebDefense.Core.Training;
using static TorchSharp.torch;

namespace WebDefense.Core.Defenses;

/// <summary>
/// FT-SAM, fine-tuning with (adaptive) sharpness-aware minimisation (Zhu, Zhang, Wu, "Enhancing Fine-Tuning Based
/// Backdoor Defense with Sharpness-Aware Minimization", ICCV 2023; BackdoorBench <c>defense/ft-sam.py</c>,
/// reference-algorithms §9): every step takes the gradient at w + e, the ASAM worst-case perturbation of radius ρ,
/// and applies it at w; label-smoothed CE; BN running statistics are left untouched by the perturbed pass.
/// </summary>
public sealed class FtSamDefense : IDefense
{
    public string Name => "ft-sam";
    public string Title => "FT-SAM (fine-tuning with sharpness-aware minimisation)";
    public string Description => "Fine-tunes on clean data with (adaptive) sharpness-aware minimisation: each step follows the gradient at a nearby worst-case point, which pushes the weights further from the backdoored solution than plain fine-tuning.";
    public string Paper => "Zhu, Zhang, Wu. Enhancing Fine-Tuning Based Backdoor Defense with Sharpness-Aware Minimization. ICCV 2023. https://arxiv.org/abs/2304.11823";
    public DefenseNeeds Needs => DefenseNeeds.CleanData;
    public IReadOnlyList<string> Steps => ["split", "fine-tune"];

    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Number("rho", 2.0, 0.0, 100.0, "Perturbation radius ρ (the reference's rho_max = rho_min = 2.0, a constant)."),
        ParameterSpec.Flag("adaptive", true, "ASAM: perturbation scaled by |w| (the reference's default); false: plain SAM."),
        ParameterSpec.Number("label_smoothing", 0.1, 0.0, 0.99, "Label smoothing ε: target 1−ε on the true class, ε/(C−1) on the others."),
        .. FtDefense.FineTuningParameters(epochs: 100),
        ScanAssistance.Scan,
        ScanAssistance.MaxValAsr,
    ];

    public DefenseOutcome Run(DefenseContext context)
    {
        var p = context.Parameters;
        context.Observer.StepStarted(0, Steps.Count, Steps[0]);
        var (train, validation) = ValidationSlice.Holdout(context, p.Number("val_fraction"));
        using var trainData = train;
        using var validationData = validation;

        context.Observer.StepStarted(1, Steps.Count, Steps[1]);
        var model = context.Model;
        var parameters = model.Module.parameters().Where(x => x.requires_grad).ToList();
        using var sam = new SharpnessAwareStep(parameters, p.Number("rho"), p.Flag("adaptive"));
        var smoothing = p.Number("label_smoothing");
        RunningStatistics? statistics = null;
        try
        {
            var result = new ValidatedFineTuning
            {
                Model = model, Train = train, Validation = validation, Options = FtDefense.Recipe(p, context),
                KeepBest = p.Choice("selection") == "best-val-acc",
                Loss = (m, batch) =>
                {
                    // First pass at w (updates BN statistics), then move to w + e and return the loss there.
                    SmoothedCrossEntropy(m.Forward(batch.Inputs), batch.Labels, m.NumClasses, smoothing).backward();
                    sam.Perturb();
                    m.Module.zero_grad();
                    statistics = RunningStatistics.Take(m.Module);
                    var logits = m.Forward(batch.Inputs);
                    return new BatchLoss(SmoothedCrossEntropy(logits, batch.Labels, m.NumClasses, smoothing), logits);
                },
                // After the backward pass at w + e: back to w (and to the BN statistics of the first pass), then the SGD step.
                BeforeStep = () =>
                {
                    sam.Restore();
                    statistics?.Restore();
                    statistics?.Dispose();
                    statistics = null;
                },
            }.Run(context);

            return result.Outcome(("optimizer", p.Flag("adaptive") ? "ASAM" : "SAM"));
        }
        finally
        {
            statistics?.Dispose();
        }
    }

    /// <summary>Mean over the batch of −Σ_k t_k log softmax(z)_k with t = 1−ε on the true class and ε/(C−1) elsewhere.</summary>
    public static Tensor SmoothedCrossEntropy(Tensor logits, Tensor labels, int classes, double smoothing)
    {
        var off = classes > 1 ? smoothing / (classes - 1) : 0;
        var target = full_like(logits, off).scatter_(1, labels.unsqueeze(1), full_like(logits, 1 - smoothing));
        return -(target * nn.functional.log_softmax(logits, 1)).sum(1).mean();
    }
}
