using WebDefense.Core.Data;
using WebDefense.Core.Defenses.Blocks;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Evaluation;
using WebDefense.Core.Models;
using WebDefense.Core.Training;

namespace WebDefense.Core.Defenses;

/// <summary>
/// AdvrBD (Pu et al., arXiv 2405.12719; reference-algorithms §13.b): trains a backdoor-robust model on an untrusted
/// training set without clean data or the poisoning ratio. (1) Warm up a model on the whole set. (2) Score every sample's
/// consistency under an adversarial patch perturbation (KL) and take the least consistent share as the likely-clean set
/// D_c (Algorithm 1). (3) Backdoor enhancement (Algorithm 2): learn the rest D_r, unlearn D_c, move the next least
/// consistent share of D_r into D_c, repeat. (4) Samples the enhanced model still classifies as their label are the
/// suspected poison. (5) Train a fresh model on the others. (6) Optionally relabel the suspects with that model and
/// fine-tune on everything. Values the paper's text lost are our choices (docs/defenses/advrbd.md).
/// </summary>
public sealed class AdvrBdDefense : ITrainingDefense
{
    public string Name => "advrbd";
    public string Title => "AdvrBD (training-time: isolate poisoned samples, train without them)";
    public string Description => "Trains a model on an untrusted training set: finds the samples whose prediction resists an adversarial patch perturbation (poisoned ones), sharpens that split by unlearning likely-clean samples, and trains a fresh model on the rest.";
    public string Paper => "Pu, Chen, Zhou, Feng, Li, Hu, Ji. How to Train a Backdoor-Robust Model on a Poisoned Dataset without Auxiliary Data? arXiv 2405.12719 (2024). https://arxiv.org/abs/2405.12719";
    public DefenseNeeds Needs => DefenseNeeds.PoisonedTrainingSet;
    public IReadOnlyList<string> Steps => ["warm-up", "consistency partition", "backdoor enhancement", "identification", "clean training", "relabel + fine-tune"];

    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Int("warmup_epochs", 5, 1, 100, "Epochs of plain training on the whole untrusted set before the first consistency scores (the backdoor is learned first)."),
        ParameterSpec.Int("patch_radius", 6, 0, 64, "The random mask m is a (2r+1)×(2r+1) square placed inside the image."),
        ParameterSpec.Number("epsilon", 0.5, 0.0, 1.0, "L∞ budget of the adversarial perturbation inside the mask, on pixels scaled to [0,1]."),
        ParameterSpec.Int("pgd_steps", 5, 0, 100, "Projected-gradient steps (size 2.5·ε/steps) maximising the KL divergence; 0 = random noise only."),
        ParameterSpec.Number("partition_rate", 0.05, 0.001, 0.5, "Share of the training set moved into the likely-clean set D_c at the start and at every enhancement iteration."),
        ParameterSpec.Flag("partition_per_label", true, "Take the partition share from every label separately (class-balanced D_c) instead of from the whole set."),
        ParameterSpec.Int("iterations", 3, 1, 50, "Backdoor-enhancement iterations; D_c ends at (iterations) × partition_rate of the set."),
        ParameterSpec.Int("learn_epochs", 1, 1, 20, "Epochs of ordinary training on the rest D_r per iteration."),
        ParameterSpec.Choice("unlearn_loss", "complement", ["complement", "ascent"], "complement: minimise −log(1 − p_y) on D_c (bounded); ascent: gradient ascent of the cross-entropy (unbounded, as RNP/TSBD unlearn)."),
        ParameterSpec.Flag("retain_rest", false, "Unlearn D_c jointly with learning D_r (each unlearning batch paired with a D_r batch, paper Eq. 4 read as one objective), so the backdoor that D_r teaches survives the unlearning."),
        ParameterSpec.Number("unlearn_lr", 0.003, 1e-6, 1.0, "SGD learning rate of the unlearning of D_c (momentum 0.9, no weight decay)."),
        ParameterSpec.Number("unlearn_threshold", 0.2, 0.0, 1.0, "Unlearning of D_c stops once its training accuracy is at or below this."),
        ParameterSpec.Int("unlearn_max_epochs", 5, 1, 100, "Most unlearning epochs per iteration."),
        ParameterSpec.Choice("identify_by", "last", ["last", "any-iteration"], "any-iteration: a sample is suspected when the enhanced model of any iteration classifies it as its label; last: only the last iteration's model decides (the paper)."),
        ParameterSpec.Int("epochs", 8, 1, 1000, "Epochs of the final model on the identified clean samples (and of the undefended comparison)."),
        ParameterSpec.Number("lr", 0.05, 1e-5, 1.0, "SGD learning rate of all ordinary training (momentum 0.9, weight decay 5e-4); the final model uses a cosine schedule over its epochs."),
        ParameterSpec.Int("batch_size", 128, 1, 4096, "Mini-batch size of training, unlearning and scoring."),
        ParameterSpec.Flag("augment", true, "Random-crop (and, for colour images, flip) augmentation of training batches."),
        ParameterSpec.Number("val_fraction", 0.05, 0.0, 0.5, "Share of the identified clean samples held out (stratified) to report the final model's validation ACC per epoch; 0 = none."),
        ParameterSpec.Flag("relabel_finetune", false, "Relabel the suspected samples with the clean model's prediction and fine-tune on all samples (the paper's optional step)."),
        ParameterSpec.Int("finetune_epochs", 3, 1, 100, "Fine-tuning epochs of the optional relabel step."),
        ParameterSpec.Number("finetune_lr", 0.005, 1e-6, 1.0, "SGD learning rate of the optional fine-tuning (momentum 0.9, weight decay 5e-4, constant)."),
    ];

    public SgdOptions Recipe(DefenseParameters p, InputSpec input) => new()
    {
        LearningRate = p.Number("lr"), Momentum = 0.9, WeightDecay = 5e-4, BatchSize = p.Int("batch_size"), Epochs = p.Int("epochs"), DropLast = true,
        Schedule = LearningRateSchedule.Cosine(p.Int("epochs")), Augment = p.Flag("augment") ? Augmentation.ForInput(input) : Augmentation.None,
    };

    public TrainingDefenseOutcome Run(TrainingDefenseContext context)
    {
        var (p, observer, data, truth) = (context.Parameters, context.Observer, context.Train, context.Truth);
        var all = Enumerable.Range(0, data.Count).ToArray();
        var labels = data.Labels.data<long>().ToArray();
        var trajectory = new List<TrajectoryPoint>();
        var findings = new Dictionary<string, object>();
        void Report(TrajectoryPoint point) { trajectory.Add(point); observer.Point(point); }
        var scoring = new AdversarialConsistency.Options(p.Int("patch_radius"), p.Number("epsilon"), p.Int("pgd_steps"), Math.Max(p.Int("batch_size"), 256));
        using var detector = context.CreateModel();
        var recipe = Recipe(p, detector.Input);
        var plain = recipe with { Epochs = p.Int("warmup_epochs"), Schedule = LearningRateSchedule.Constant };

        // 1. Warm-up: plain training on the whole untrusted set.
        observer.StepStarted(0, Steps.Count, Steps[0]);
        var warmup = Train(detector, data, plain, context, e => Report(new TrajectoryPoint(e.Epoch + 1, "warm-up epoch", Loss: e.Loss, Phase: "warm-up",
            Values: new Dictionary<string, double> { ["train_acc"] = e.TrainAccuracy })), p.Int("warmup_epochs"));
        findings["warmup_train_acc"] = warmup[^1].TrainAccuracy;

        // 2. Algorithm 1: the least consistent share becomes the likely-clean set D_c.
        observer.StepStarted(1, Steps.Count, Steps[1]);
        var kl = AdversarialConsistency.Score(detector, data, all, scoring, context.Random, context.Cancellation, f => observer.Progress(f, $"consistency scores: {f:P0}"));
        var rate = p.Number("partition_rate");
        int[] LeastConsistent(IReadOnlyList<int> rows, IReadOnlyList<double> scores) => p.Flag("partition_per_label")
            ? LikelyCleanPartition.MostInconsistentPerLabel(rows, scores, labels, rate)
            : LikelyCleanPartition.MostInconsistent(rows, scores, LikelyCleanPartition.Quota(data.Count, rate));
        var likelyClean = new SortedSet<int>(LeastConsistent(all, kl));
        var partition = SetValues(likelyClean, truth, kl);
        if (truth?.Auroc(all, kl.Select(v => -v).ToArray()) is { } auroc) partition["consistency_auroc"] = auroc;
        partition["kl_threshold"] = likelyClean.Min(i => kl[i]);
        partition["kl_median"] = kl.Order().ElementAt(kl.Length / 2);
        Report(new TrajectoryPoint(0, "iteration", Phase: "partition", Note: $"the {likelyClean.Count} least consistent samples form D_c", Values: partition));

        // 3. Algorithm 2: learn D_r, unlearn D_c; then score the samples of D_r the enhanced model misclassifies (poisoned
        //    ones keep their label under a working backdoor) and move the least consistent share of them into D_c.
        observer.StepStarted(2, Steps.Count, Steps[2]);
        var iterations = p.Int("iterations");
        var unlearn = plain with { LearningRate = p.Number("unlearn_lr"), WeightDecay = 0, Epochs = p.Int("unlearn_max_epochs"), DropLast = false };
        var enhanced = (Predicted: Array.Empty<long>(), LabelProbability: Array.Empty<double>());
        var anyIteration = p.Choice("identify_by") == "any-iteration";
        var suspectedEver = new SortedSet<int>();
        var suspicion = new double[data.Count];
        for (var t = 1; t <= iterations; t++)
        {
            var rest = all.Where(i => !likelyClean.Contains(i)).ToArray();
            using var restData = data.Subset(rest.Select(i => (long)i).ToArray());
            using var cleanData = data.Subset(likelyClean.Select(i => (long)i).ToArray());
            Train(detector, restData, plain with { Epochs = p.Int("learn_epochs") }, context, null, 0);
            var unlearned = Unlearning.Forget(detector, cleanData, p.Flag("retain_rest") ? restData : null, unlearn, p.Number("unlearn_threshold"),
                p.Choice("unlearn_loss") == "complement", context.Random, context.Cancellation);

            enhanced = Evaluator.PredictWithConfidence(detector, data);
            suspectedEver.UnionWith(Suspects(enhanced.Predicted, labels));
            for (var i = 0; i < suspicion.Length; i++) suspicion[i] = anyIteration ? Math.Max(suspicion[i], enhanced.LabelProbability[i]) : enhanced.LabelProbability[i];
            var values = SetValues(likelyClean, truth, kl);
            values["acc_likely_clean"] = Accuracy(enhanced.Predicted, labels, likelyClean);
            values["acc_rest"] = Accuracy(enhanced.Predicted, labels, rest);
            values["unlearn_epochs"] = unlearned.Count;
            if (truth is not null) AddDetection(values, truth, anyIteration ? suspectedEver.ToArray() : Suspects(enhanced.Predicted, labels));
            if (t < iterations)
            {
                var candidates = rest.Where(i => enhanced.Predicted[i] != labels[i]).ToArray();
                var scores = AdversarialConsistency.Score(detector, data, candidates, scoring, context.Random, context.Cancellation);
                for (var i = 0; i < candidates.Length; i++) kl[candidates[i]] = scores[i];
                var moved = LeastConsistent(candidates, scores);
                likelyClean.UnionWith(moved);
                values["candidates"] = candidates.Length;
                values["moved"] = moved.Length;
                if (truth is not null) values["poisoned_moved"] = truth.CountPoisoned(moved);
            }

            Report(new TrajectoryPoint(t, "iteration", Loss: unlearned[^1].Loss, Phase: "enhance",
                Note: $"learned D_r ({rest.Length}) for {p.Int("learn_epochs")} epoch(s), unlearned D_c ({data.Count - rest.Length}) for {unlearned.Count} epoch(s)", Values: values));
            observer.Progress((double)t / iterations, $"enhancement iteration {t}: D_c {data.Count - rest.Length}, ACC on D_c {values["acc_likely_clean"]:P1}, on D_r {values["acc_rest"]:P1}");
        }

        // 4. Identification: samples the enhanced model misclassifies are clean, the rest are suspected.
        observer.StepStarted(3, Steps.Count, Steps[3]);
        var suspected = anyIteration ? suspectedEver.ToArray() : Suspects(enhanced.Predicted, labels);
        var suspectedSet = suspected.ToHashSet();
        var identifiedClean = all.Where(i => !suspectedSet.Contains(i)).Select(i => (long)i).ToArray();
        findings["likely_clean_final"] = likelyClean.Count;
        findings["likely_clean_by_label"] = Enumerable.Range(0, detector.NumClasses).Select(c => likelyClean.Count(i => labels[i] == c)).ToArray();
        findings["suspected"] = suspected.Length;
        findings["identified_clean"] = identifiedClean.Length;
        var keptByLabel = Enumerable.Range(0, detector.NumClasses).Select(c => identifiedClean.Count(i => labels[i] == c)).ToArray();
        findings["identified_clean_by_label"] = keptByLabel;
        foreach (var c in Enumerable.Range(0, detector.NumClasses).Where(c => keptByLabel[c] < 0.1 * labels.Count(l => l == c)))
        {
            observer.Log($"warning: only {keptByLabel[c]} of the {labels.Count(l => l == c)} samples labelled {c} are kept for training; the model will hardly learn that class");
        }
        if (identifiedClean.Length < 2 * detector.NumClasses)
        {
            throw new DefenseInputException($"AdvrBD identified only {identifiedClean.Length} clean samples of {data.Count}: too few to train on (try fewer iterations or a lower unlearn_threshold)");
        }

        // 5. A fresh model on the identified clean samples (a held-out slice of them only reports validation ACC).
        observer.StepStarted(4, Steps.Count, Steps[4]);
        var (trainRows, valRows) = p.Number("val_fraction") > 0
            ? DataSplits.Holdout(identifiedClean.Select(i => labels[i]).ToArray(), p.Number("val_fraction"), context.Random)
            : (Enumerable.Range(0, identifiedClean.Length).Select(i => (long)i).ToArray(), []);
        using var cleanTrain = data.Subset(trainRows.Select(r => identifiedClean[r]).ToArray());
        using var validation = valRows.Length > 0 ? data.Subset(valRows.Select(r => identifiedClean[r]).ToArray()) : null;
        var model = context.CreateModel();
        try
        {
            Train(model, cleanTrain, recipe, context, e => Report(Epoch(e, "train")), recipe.Epochs, validation is null ? null : () => Evaluator.Accuracy(model, validation));
            findings["train_samples"] = cleanTrain.Count;
            findings["val_samples"] = validation?.Count ?? 0;
            if (validation is not null) findings["final_val_acc"] = Evaluator.Accuracy(model, validation);

            // 6. Optional: relabel the suspects with the clean model and fine-tune on the union.
            observer.StepStarted(5, Steps.Count, Steps[5]);
            if (p.Flag("relabel_finetune") && suspected.Length > 0)
            {
                using var suspects = data.Subset(suspected.Select(i => (long)i).ToArray());
                var relabels = Evaluator.Predict(model, suspects.Images);
                findings["relabelled_changed"] = suspected.Where((row, k) => relabels[k] != labels[row]).Count();
                using var union = new ImageDataset(TorchSharp.torch.cat([cleanTrain.Images, suspects.Images]), TorchSharp.torch.cat([cleanTrain.Labels, TorchSharp.torch.tensor(relabels)]));
                var finetune = recipe with { LearningRate = p.Number("finetune_lr"), Epochs = p.Int("finetune_epochs"), Schedule = LearningRateSchedule.Constant };
                Train(model, union, finetune, context, e => Report(Epoch(e, "fine-tune")), finetune.Epochs, validation is null ? null : () => Evaluator.Accuracy(model, validation));
                if (validation is not null) findings["final_val_acc"] = Evaluator.Accuracy(model, validation);
            }
            else
            {
                observer.Log(p.Flag("relabel_finetune") ? "relabel + fine-tune: nothing suspected, skipped" : "relabel + fine-tune: off");
            }

            model.Module.eval();
            if (truth is not null)
            {
                var detection = truth.Score(suspected);
                findings["detection_precision"] = detection.Precision;
                findings["detection_recall"] = detection.Recall;
                findings["poisoned_kept_for_training"] = detection.Missed;
            }

            var rule = $"suspected: the {suspected.Length} of {data.Count} samples " + (anyIteration ? $"some iteration's backdoor-enhanced model ({iterations} iterations" : $"the backdoor-enhanced model ({iterations} iterations") +
                       $", |D_c| = {likelyClean.Count}) still classifies as their label; " +
                       $"the model is trained on the other {identifiedClean.Length}" + (p.Flag("relabel_finetune") ? ", then fine-tuned with the suspects relabelled" : "");
            return new TrainingDefenseOutcome(model, suspicion, anyIteration
                    ? "highest probability any iteration's backdoor-enhanced model gives the sample's own label (suspected when, in some iteration, that label is the arg-max)"
                    : "probability the last backdoor-enhanced model gives the sample's own label (suspected when it is the arg-max)",
                suspected, trajectory, new OperatingPoint(suspected.Length, rule), findings, new Dictionary<string, IReadOnlyList<double>> { ["consistency_kl"] = kl });
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    private static IReadOnlyList<EpochReport> Train(Classifier model, ImageDataset data, SgdOptions options, TrainingDefenseContext context,
        Action<EpochReport>? onEpoch, int epochs, Func<double>? validate = null) =>
        new TrainingLoop
        {
            Model = model, Data = data, Options = options, Validate = validate,
            OnEpoch = e =>
            {
                onEpoch?.Invoke(e);
                if (epochs > 0) context.Observer.Progress((e.Epoch + 1.0) / epochs, $"epoch {e.Epoch + 1}/{epochs}: train ACC {e.TrainAccuracy:P1}");
            },
        }.Run(context.Random, context.Cancellation);

    private static TrajectoryPoint Epoch(EpochReport e, string phase) =>
        new(e.Epoch + 1, "epoch", e.Validation, Loss: e.Loss, Phase: phase, Values: new Dictionary<string, double> { ["train_acc"] = e.TrainAccuracy });

    private static int[] Suspects(long[] predicted, long[] labels) => Enumerable.Range(0, labels.Length).Where(i => predicted[i] == labels[i]).ToArray();

    private static double Accuracy(long[] predicted, long[] labels, IEnumerable<int> rows)
    {
        var list = rows.ToList();
        return list.Count == 0 ? 0 : (double)list.Count(i => predicted[i] == labels[i]) / list.Count;
    }

    private static Dictionary<string, double> SetValues(IReadOnlyCollection<int> likelyClean, PoisonTruth? truth, double[] kl)
    {
        var values = new Dictionary<string, double>
        {
            ["likely_clean"] = likelyClean.Count,
            ["likely_clean_share"] = (double)likelyClean.Count / kl.Length,
        };
        if (truth is not null) values["poisoned_in_likely_clean"] = truth.CountPoisoned(likelyClean);
        return values;
    }

    private static void AddDetection(Dictionary<string, double> values, PoisonTruth truth, int[] suspected)
    {
        var d = truth.Score(suspected);
        values["suspected"] = d.Suspected;
        values["precision"] = d.Precision;
        values["recall"] = d.Recall;
    }
}
