using System.Globalization;
using WebDefense.Core.Data;
using WebDefense.Core.Data.Triggers;
using WebDefense.Core.Defenses.Blocks;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Evaluation;
using WebDefense.Core.Models.Zoo;
using WebDefense.Core.Training;

namespace WebDefense.Experiments;

/// <summary>
/// How well AdvrBD's consistency score separates poisoned from clean samples for a grid of patch radii, budgets and
/// PGD steps (the evidence behind the defaults in docs/defenses/advrbd.md): warm up a SmallCnn on a poisoned
/// Fashion-MNIST subset, score every sample, print the AUROC (poisoned = more consistent) and the poisoned share of the
/// least consistent 5%, next to the plain loss as a score.
/// </summary>
internal static class AdvrBdScoresCommand
{
    public static void Run(ExperimentOptions options)
    {
        var inv = CultureInfo.InvariantCulture;
        var perClass = options.Int("per-class", 500);
        var ratio = options.Number("ratio", 0.1);
        var attack = options.Text("attack", "badnets") switch
        {
            "badnets" => AttackSpec.BadNets with { PoisonRatio = ratio },
            "blended" => AttackSpec.Blended with { PoisonRatio = ratio },
            "sig" => AttackSpec.Sig(ratio),
            var other => throw new ArgumentException($"unknown attack {other}"),
        };
        var seed = options.Int("seed", 0);
        using var full = FashionMnist.Train();
        using var train = DefenseStudy.BalancedSample(full, perClass, 0);
        using var poisoned = Poisoning.Poison(train, attack.Trigger, attack.TargetLabel, attack.PoisonRatio, attack.CleanLabel, seed);
        var truth = new PoisonTruth(poisoned.PoisonFlags());
        var rows = Enumerable.Range(0, train.Count).ToArray();
        var recipe = AttackLab.Recipe(options.Int("warmup", 2), InputSpec.Grey28, options.Number("lr", 0.05)) with { Schedule = LearningRateSchedule.Constant };
        using var model = TrainingDefenseRunner.TrainWithoutDefense(() => ModelZoo.CreateClassifier("smallcnn", 10, InputSpec.Grey28), poisoned.Data, recipe, seed);
        var (predicted, probability) = Evaluator.PredictWithConfidence(model, poisoned.Data);
        var labels = poisoned.Data.Labels.data<long>().ToArray();
        Console.WriteLine($"warm-up {recipe.Epochs} epochs: train ACC {rows.Count(i => predicted[i] == labels[i]) / (double)rows.Length:P1}, " +
                          $"poisoned predicted as label {truth.CountPoisoned(rows.Where(i => predicted[i] == labels[i])) / (double)truth.Poisoned:P1}");
        Report("loss (1 - p_label)", probability.Select(p => 1 - p).ToArray());
        foreach (var radius in options.Text("radii", "1,3,5").Split(',').Select(int.Parse))
        {
            foreach (var eps in options.Text("eps", "0.1,0.25,0.5").Split(',').Select(s => double.Parse(s, inv)))
            {
                foreach (var steps in options.Text("steps", "5").Split(',').Select(int.Parse))
                {
                    var watch = System.Diagnostics.Stopwatch.StartNew();
                    var kl = AdversarialConsistency.Score(model, poisoned.Data, rows, new AdversarialConsistency.Options(radius, eps, steps), new Random(seed), CancellationToken.None);
                    Report($"KL r={radius} eps={eps} steps={steps} ({watch.Elapsed.TotalSeconds:0}s)", kl);
                }
            }
        }

        void Report(string name, double[] score)
        {
            var auroc = truth.Auroc(rows, score.Select(v => -v).ToArray());
            var top = LikelyCleanPartition.MostInconsistent(rows, score, LikelyCleanPartition.Quota(rows.Length, 0.05));
            Console.WriteLine($"{name}: AUROC {auroc:0.000}, poisoned in the top 5%: {truth.CountPoisoned(top)} of {top.Length}, " +
                              $"median poisoned {Median(rows.Where(truth.IsPoisoned).Select(i => score[i])):0.####} clean {Median(rows.Where(i => !truth.IsPoisoned(i)).Select(i => score[i])):0.####}");
        }
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? double.NaN : sorted[sorted.Length / 2];
    }
}
