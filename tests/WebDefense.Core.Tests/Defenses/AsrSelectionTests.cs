using WebDefense.Core.Defenses.Blocks;
using WebDefense.Core.Defenses.Framework;

namespace WebDefense.Core.Tests.Defenses;

/// <summary>The pruning sweep's selection with a validation ASR (a trigger, triggered images or the scan's reconstruction).</summary>
public class AsrSelectionTests
{
    private static PruningSweep.Result Sweep(double[] acc, double[] asr, double? maxAsr)
    {
        var levels = acc.Select((_, i) => new PruningSweep.Level(i, i / 10.0)).ToList();
        var current = 0;
        return PruningSweep.Run(levels, level => current = level.Units,
            () => new ValidationScores(acc[current], asr[current], 1 - asr[current], 0.5, 1.0), maxAccDrop: 0.03, "channels pruned",
            NullDefenseObserver.Instance, CancellationToken.None, maxAsr);
    }

    [Fact]
    public void The_smallest_level_that_meets_the_asr_bound_within_the_acc_bound()
    {
        // ACC allows levels 0–4 (level 5 drops 4 points); ASR first reaches ≤ 10% at level 2, then rises again.
        double[] acc = [0.90, 0.90, 0.89, 0.88, 0.88, 0.86];
        double[] asr = [1.00, 0.95, 0.08, 0.05, 0.30, 0.01];
        Assert.Equal(4, Sweep(acc, asr, maxAsr: null).ChosenIndex); // ACC alone: the largest level within the bound
        var chosen = Sweep(acc, asr, maxAsr: 0.10);
        Assert.Equal(2, chosen.ChosenIndex);
        Assert.StartsWith("smallest pruning whose validation ASR (8.0%) is at most 10%", chosen.Rule);
    }

    [Fact]
    public void Without_a_level_at_the_bound_the_lowest_asr_within_the_acc_bound_ties_to_the_larger_level()
    {
        double[] acc = [0.90, 0.90, 0.89, 0.88, 0.80];
        double[] asr = [1.00, 0.40, 0.15, 0.15, 0.00]; // level 4 would meet the bound but breaks the ACC bound
        Assert.Equal(3, Sweep(acc, asr, maxAsr: 0.10).ChosenIndex);
        double[] flat = [1.0, 1.0, 1.0, 1.0, 1.0];
        Assert.Equal(3, Sweep(acc, flat, maxAsr: 0.10).ChosenIndex); // an ASR that never moves: as far as the ACC rule
    }

    [Theory]
    [InlineData(0.98, 50, 0.0596)] // a lucky start on 50 images: 2·1.98% + 2% → an epoch two images down (94%) still counts
    [InlineData(0.90, 50, 0.1049)] // 2·4.24% + 2%
    [InlineData(0.90, 500, 0.03)]  // a slice of 500 resolves better than 3 points: the constant holds
    [InlineData(1.00, 50, 0.03)]
    public void An_epoch_chosen_for_its_asr_may_lose_three_points_or_the_validation_slices_resolution(double start, int images, double expected)
    {
        Assert.Equal(expected, ValidatedFineTuning.AccTolerance(start, images), 4);
    }
}
