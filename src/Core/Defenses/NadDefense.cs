using WebDefense.Core.Scanning;
using WebDefense.Core.Defenses.Blocks;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Models;
using WebDefense.Core.Training;
using static TorchSharp.torch;

namespace WebDefense.Core.Defenses;

/// <summary>
/// NAD, Neural Attention Distillation (Li et al., ICLR 2021; BackdoorBench <c>defense/nad.py</c>,
/// reference-algorithms §6): fine-tune a copy of the model into a teacher, then train the original (the student)
/// with CE plus β·MSE between the student's and teacher's normalised attention maps at two deep layers.
/// Needs the layers by name, so only zoo architectures (forward hooks) are supported.
/// </summary>
public sealed class NadDefense : IDefense
{
    public string Name => "nad";
    public string Title => "NAD (Neural Attention Distillation)";
    public string Description => "Fine-tunes a copy of the model into a teacher, then distils the original model towards the teacher's attention maps at two deep layers while training on clean data. Zoo architectures only.";
    public string Paper => "Li, Lyu, Koren, Lyu, Li, Ma. Neural Attention Distillation: Erasing Backdoor Triggers from Deep Neural Networks. ICLR 2021. https://arxiv.org/abs/2101.05930";
    public DefenseNeeds Needs => DefenseNeeds.CleanData;
    public IReadOnlyList<string> Steps => ["split", "teacher", "distil"];

    /// <summary>The two layers distilled (β1, β2) per zoo architecture: the outputs of the two deepest stages.</summary>
    public static IReadOnlyDictionary<string, string[]> AttentionLayers { get; } = new Dictionary<string, string[]>
    {
        ["preactresnet18"] = ["layer3", "layer4"],       // the reference's choice
        ["resnet18"] = ["layer3", "layer4"],
        ["smallcnn"] = ["bn2", "bn3"],                   // the 2nd and 3rd conv blocks (14×14 and 7×7), before ReLU like PreAct's stage outputs
        ["vgg19_bn"] = ["features.38", "features.51"],   // last ReLU of the 4th and 5th conv stages, before their max pools
        ["mobilenet_v2"] = ["features.6", "features.13"], // ends of the 32- and 96-channel stages (4×4 and 2×2 on 32×32 inputs)
    };

    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Int("te_epochs", 10, 1, 1000, "Teacher fine-tuning epochs (FT recipe: SGD, cosine T_max 100)."),
        ParameterSpec.Int("epochs", 10, 1, 1000, "Student distillation epochs (the reference trains the student for te_epochs = 10). lr as the reference: lr until epoch 20, lr/100 afterwards."),
        ParameterSpec.Number("beta1", 500, 0, 1e6, "Weight of the attention loss at the first layer (PreActResNet18: layer3)."),
        ParameterSpec.Number("beta2", 1000, 0, 1e6, "Weight of the attention loss at the second layer (PreActResNet18: layer4)."),
        ParameterSpec.Number("p", 2.0, 0.5, 8.0, "Power of the attention map: a(f) = Σ_c |f_c|^p, normalised per sample."),
        ParameterSpec.Number("lr", 0.01, 1e-6, 1.0, "SGD learning rate of teacher and student (momentum 0.9, weight decay 5e-4)."),
        ParameterSpec.Int("batch_size", 256, 1, 4096, "Mini-batch size."),
        ParameterSpec.Number("val_fraction", 0.1, 0.01, 0.5, "Share of the clean data held out (stratified) to score every epoch and choose the models."),
        ParameterSpec.Choice("selection", "best-val-acc", ["best-val-acc", "last"], "Student epoch: best-val-acc: the highest validation ACC (ties → later); last: the last epoch, as the reference. The teacher is always its last epoch, as the reference."),
        ParameterSpec.Flag("augment", true, "Random-crop (and, for colour images, flip) augmentation of the clean data, as the reference does."),
        ScanAssistance.Scan,
        ScanAssistance.MaxValAsr,
    ];

    public DefenseOutcome Run(DefenseContext context)
    {
        var p = context.Parameters;
        var student = context.Model;
        if (student.IsTorchScript || !AttentionLayers.TryGetValue(student.Architecture, out var layers))
        {
            throw new DefenseInputException($"NAD needs a zoo architecture ({string.Join(", ", AttentionLayers.Keys)}) to read attention maps at named layers; " +
                $"this model is '{student.Architecture}'{(student.IsTorchScript ? " (TorchScript has no forward hooks on its layers)" : string.Empty)}.");
        }

        context.Observer.StepStarted(0, Steps.Count, Steps[0]);
        var (train, validation) = ValidationSlice.Holdout(context, p.Number("val_fraction"));
        using var trainData = train;
        using var validationData = validation;
        var keepBest = p.Choice("selection") == "best-val-acc";
        var augment = p.Flag("augment") ? Augmentation.ForInput(student.Input) : Augmentation.None;

        // Teacher: a fine-tuned copy (FT recipe), the last epoch as in the reference (the best validation ACC would pick
        // the least fine-tuned, most backdoored epoch), then frozen in eval mode.
        context.Observer.StepStarted(1, Steps.Count, Steps[1]);
        using var teacher = student.Clone();
        var options = new SgdOptions
        {
            LearningRate = p.Number("lr"), Momentum = 0.9, WeightDecay = 5e-4, BatchSize = p.Int("batch_size"), Epochs = p.Int("te_epochs"),
            DropLast = false, Schedule = LearningRateSchedule.Cosine(100), Augment = augment,
        };
        var teaching = new ValidatedFineTuning { Model = teacher, Train = train, Validation = validation, Options = options, KeepBest = false, Phase = "teacher" }.Run(context);
        teacher.Module.eval();

        // Student: CE + β1·AT(layer 1) + β2·AT(layer 2) against the teacher's maps.
        context.Observer.StepStarted(2, Steps.Count, Steps[2]);
        using var studentTap = new FeatureTap(student, layers);
        using var teacherTap = new FeatureTap(teacher, layers);
        double[] betas = [p.Number("beta1"), p.Number("beta2")];
        var power = p.Number("p");
        var distilling = new ValidatedFineTuning
        {
            Model = student, Train = train, Validation = validation, KeepBest = keepBest, Phase = "distil",
            Options = options with { Epochs = p.Int("epochs"), Schedule = LearningRateSchedule.MultiStep([20], 0.01) },
            Loss = (model, batch) =>
            {
                var (logits, fs) = studentTap.Forward(batch.Inputs);
                Tensor[] ft;
                using (no_grad()) (_, ft) = teacherTap.Forward(batch.Inputs);
                var loss = nn.functional.cross_entropy(logits, batch.Labels);
                for (var i = 0; i < betas.Length; i++) loss = loss + betas[i] * AttentionLoss(fs[i], ft[i], power);
                foreach (var t in fs.Concat(ft)) t.Dispose();
                return new BatchLoss(loss, logits);
            },
        }.Run(context);

        var findings = new Dictionary<string, object>
        {
            ["attention_layers"] = layers,
            ["teacher_epoch"] = teaching.ChosenEpoch,
            ["teacher_val_acc"] = teaching.Chosen.Acc,
            ["chosen_epoch"] = distilling.ChosenEpoch,
            ["final_val_acc"] = distilling.Chosen.Acc,
        };
        if (distilling.Chosen.Asr is { } asr) findings["final_val_asr"] = asr;
        if (teaching.Chosen.Asr is { } teacherAsr) findings["teacher_val_asr"] = teacherAsr;
        return new DefenseOutcome([.. teaching.Points, .. distilling.Points],
            new OperatingPoint(distilling.ChosenEpoch, $"teacher: {teaching.Rule}; student: {distilling.Rule}"), findings);
    }

    /// <summary>a(f) = Σ_c |f_c|^p over channels (N×1×H×W), divided by its L2 norm over H, W plus 1e-6.</summary>
    public static Tensor AttentionMap(Tensor features, double p)
    {
        var map = features.abs().pow(p).sum(1, keepdim: true);
        return map / (map.flatten(2).norm(2, keepdim: true).unsqueeze(-1) + 1e-6);
    }

    /// <summary>MSE between the attention maps (mean over all elements); the teacher's is treated as a constant.</summary>
    public static Tensor AttentionLoss(Tensor student, Tensor teacher, double p) =>
        nn.functional.mse_loss(AttentionMap(student, p), AttentionMap(teacher, p).detach());
}
