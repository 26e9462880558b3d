using TorchSharp;
using WebDefense.Core.Data;
using WebDefense.Core.Defenses.Blocks;
using WebDefense.Core.Evaluation;
using WebDefense.Core.Models.Zoo;
using WebDefense.Core.Tests.Data;
using static TorchSharp.torch;

namespace WebDefense.Core.Tests.Defenses;

/// <summary>The pieces of AdvrBD: the KL consistency score, the patch mask, the bounded perturbation, the partition rule.</summary>
public class AdvrBdBlocksTests
{
    [Fact]
    public void Kl_is_zero_for_identical_predictions_and_matches_the_definition_otherwise()
    {
        torch.random.manual_seed(3);
        using var scope = NewDisposeScope();
        var logits = randn(8, 10).mul(3);
        Assert.True(AdversarialConsistency.KlDivergence(logits, logits).abs().max().item<float>() < 1e-6f);
        // Softmax ignores a constant shift of the logits: same distribution, zero divergence.
        Assert.True(AdversarialConsistency.KlDivergence(logits, logits.add(5)).abs().max().item<float>() < 1e-5f);

        var other = randn(8, 10).mul(3);
        var kl = AdversarialConsistency.KlDivergence(logits, other).data<float>().ToArray();
        var p = nn.functional.softmax(logits, 1).data<float>().ToArray();
        var q = nn.functional.softmax(other, 1).data<float>().ToArray();
        for (var n = 0; n < 8; n++)
        {
            var expected = Enumerable.Range(0, 10).Sum(k => p[n * 10 + k] * Math.Log(p[n * 10 + k] / q[n * 10 + k]));
            Assert.Equal(expected, kl[n], 4);
            Assert.True(kl[n] > 0);
        }
    }

    [Fact]
    public void Patch_masks_are_squares_of_side_2r_plus_1_inside_the_image()
    {
        using var masks = PatchMask.Random(64, 28, 28, radius: 3, new Random(1));
        Assert.Equal([64L, 1, 28, 28], masks.shape);
        var values = masks.data<float>().ToArray();
        var positions = new HashSet<(int, int)>();
        for (var n = 0; n < 64; n++)
        {
            var on = Enumerable.Range(0, 28 * 28).Where(i => values[n * 784 + i] == 1f).ToList();
            Assert.Equal(49, on.Count);
            Assert.All(Enumerable.Range(0, 784), i => Assert.True(values[n * 784 + i] is 0f or 1f));
            var (rows, cols) = (on.Select(i => i / 28).Distinct().Order().ToList(), on.Select(i => i % 28).Distinct().Order().ToList());
            Assert.Equal(7, rows.Count);
            Assert.Equal(7, cols.Count);
            Assert.Equal(6, rows[^1] - rows[0]);
            Assert.Equal(6, cols[^1] - cols[0]);
            positions.Add((rows[0], cols[0]));
        }

        Assert.True(positions.Count > 30, "the windows are placed at random");
        using var again = PatchMask.Random(64, 28, 28, radius: 3, new Random(1));
        Assert.True(masks.eq(again).all().item<bool>(), "same seed, same masks");
        using var whole = PatchMask.Random(2, 28, 28, radius: 20, new Random(1));
        Assert.Equal(2 * 784f, whole.sum().item<float>());
        using var pixel = PatchMask.Random(3, 5, 7, radius: 0, new Random(1));
        Assert.Equal(3f, pixel.sum().item<float>());
    }

    [Fact]
    public void The_adversarial_perturbation_stays_in_its_bound_and_mask_and_raises_the_divergence()
    {
        torch.random.manual_seed(5);
        using var model = ModelZoo.CreateClassifier("smallcnn", 10, InputSpec.Grey28);
        model.Module.eval();
        using var scope = NewDisposeScope();
        var pixels = rand(32, 1, 28, 28);
        var mask = PatchMask.Random(32, 28, 28, radius: 4, new Random(2));
        const double eps = 0.2;
        var pgd = new AdversarialConsistency.Options(4, eps, Steps: 10);
        var perturbed = AdversarialConsistency.Perturb(model, pixels, mask, pgd, new Random(3));

        var change = perturbed.sub(pixels).abs();
        Assert.True(change.max().item<float>() <= eps + 1e-6, $"max |δ| {change.max().item<float>()} > ε");
        Assert.Equal(0f, change.mul(mask.neg().add(1)).max().item<float>());
        Assert.True(change.mul(mask).max().item<float>() > eps / 2, "the perturbation uses its budget inside the mask");
        Assert.True(perturbed.min().item<float>() >= 0 && perturbed.max().item<float>() <= 1);

        // Gradient ascent on the KL beats the random start it began from.
        var noise = AdversarialConsistency.Perturb(model, pixels, mask, pgd with { Steps = 0 }, new Random(3));
        using var noGrad = no_grad();
        var clean = model.Forward(model.Input.NormalizeUnit(pixels));
        var klPgd = AdversarialConsistency.KlDivergence(clean, model.Forward(model.Input.NormalizeUnit(perturbed))).mean().item<float>();
        var klNoise = AdversarialConsistency.KlDivergence(clean, model.Forward(model.Input.NormalizeUnit(noise))).mean().item<float>();
        Assert.True(klPgd > 2 * klNoise, $"KL after PGD {klPgd} vs random start {klNoise}");
        Assert.Equal(0, model.Module.parameters().Count(p => p.grad is not null));
    }

    [Fact]
    public void Scores_are_non_negative_in_row_order_and_fixed_by_the_seed()
    {
        torch.random.manual_seed(5);
        using var model = ModelZoo.CreateClassifier("smallcnn", 10, InputSpec.Grey28);
        using var test = TestData.FashionMnistTest();
        using var data = test.Subset(Enumerable.Range(0, 40).Select(i => (long)i).ToArray());
        var options = new AdversarialConsistency.Options(3, 0.3, 2, BatchSize: 16);
        int[] rows = [5, 1, 30, 7];
        var a = AdversarialConsistency.Score(model, data, rows, options, new Random(9), CancellationToken.None);
        var b = AdversarialConsistency.Score(model, data, rows, options, new Random(9), CancellationToken.None);
        Assert.Equal(a, b);
        Assert.All(a, s => Assert.True(s >= 0));
        var all = AdversarialConsistency.Score(model, data, Enumerable.Range(0, 40).ToArray(), options, new Random(9), CancellationToken.None);
        Assert.Equal(40, all.Length);
        Assert.True(model.Module.training, "the model's mode is restored");
    }

    [Fact]
    public void The_partition_takes_the_least_consistent_rows_deterministically()
    {
        int[] candidates = [10, 11, 12, 13, 14, 15];
        double[] scores = [0.5, 2.0, double.NaN, 0.1, 2.0, 0.7];
        Assert.Equal([11, 14], LikelyCleanPartition.MostInconsistent(candidates, scores, 2));
        // Ties go to the lower row: with 2.0 twice and one slot, row 11 wins.
        Assert.Equal([11], LikelyCleanPartition.MostInconsistent(candidates, scores, 1));
        Assert.Equal([10, 11, 14, 15], LikelyCleanPartition.MostInconsistent(candidates, scores, 4));
        // NaN is never chosen, even when more are asked for than there are numbers.
        Assert.Equal([10, 11, 13, 14, 15], LikelyCleanPartition.MostInconsistent(candidates, scores, 10));
        Assert.Throws<ArgumentException>(() => LikelyCleanPartition.MostInconsistent(candidates, [1.0], 1));

        // Per label: round(rate · n_c) of each label's candidates, n_c counted over the whole set.
        long[] labels = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1];
        int[] rows = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
        double[] klScores = [9, 1, 8, 2, 7, 6, 5, 4, 3, 2];
        // Label 0 has 5 samples → 2 (2.5, half to even); label 1 has 11 → 6 (5.5), but only 6 are candidates.
        Assert.Equal([0, 2, 4, 5, 6, 7, 8, 9], LikelyCleanPartition.MostInconsistentPerLabel(rows, klScores, labels, 0.5));
        // Rate 0.25: label 0 → 1 (1.25), label 1 → 3 (2.75); the least consistent of each label's candidates.
        Assert.Equal([0, 4, 5, 6], LikelyCleanPartition.MostInconsistentPerLabel(rows, klScores, labels, 0.25));
        // A label with few candidates gives what it has; the others keep their own quota.
        Assert.Equal([1, 4, 5, 6], LikelyCleanPartition.MostInconsistentPerLabel([1, 4, 5, 6, 7], [1, 7, 6, 5, 4], labels, 0.25));

        Assert.Equal(500, LikelyCleanPartition.Quota(10_000, 0.05));
        Assert.Equal(1, LikelyCleanPartition.Quota(10, 0.01));
        Assert.Equal(0, LikelyCleanPartition.Quota(10, 0));
        Assert.Equal(2, LikelyCleanPartition.Quota(50, 0.05)); // 2.5 → 2, half to even
        Assert.Throws<ArgumentOutOfRangeException>(() => LikelyCleanPartition.Quota(10, 1.5));
    }

    [Fact]
    public void Detection_metrics_count_true_positives_against_the_truth()
    {
        var truth = PoisonTruth.FromIndices(10, [1, 3, 5, 7]);
        var d = truth.Score([1, 3, 4]);
        Assert.Equal((3, 4, 2, 10), (d.Suspected, d.Poisoned, d.TruePositives, d.Total));
        Assert.Equal(2.0 / 3, d.Precision, 12);
        Assert.Equal(0.5, d.Recall, 12);
        Assert.Equal(2, d.Missed);
        Assert.Equal(0, truth.Score([]).Precision);
        Assert.Throws<ArgumentOutOfRangeException>(() => PoisonTruth.FromIndices(3, [3]));
    }
}
