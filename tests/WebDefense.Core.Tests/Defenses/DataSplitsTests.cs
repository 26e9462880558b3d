using WebDefense.Core.Defenses.Framework;

namespace WebDefense.Core.Tests.Defenses;

public class DataSplitsTests
{
    private static readonly long[] Labels = Enumerable.Range(0, 1000).Select(i => (long)(i % 10)).ToArray();

    [Theory]
    [InlineData(2, 2, 1)]     // n_val = int(0.2) = 0 → 1, draw 3: 2 train + 1 val
    [InlineData(10, 9, 1)]    // n_val = 1: 9 train + 1 val
    [InlineData(100, 90, 10)] // n_val = 10: 90 train + 10 val
    public void Grad_prune_per_class_split_matches_the_reference(int perClass, int trainPerClass, int valPerClass)
    {
        var (train, val) = DataSplits.PerClass(Labels, perClass, 0.1, new Random(3));
        Assert.Equal(10 * trainPerClass, train.Length);
        Assert.Equal(10 * valPerClass, val.Length);
        Assert.Empty(train.Intersect(val));
        Assert.All(Enumerable.Range(0, 10), c => Assert.Equal(trainPerClass, train.Count(i => Labels[i] == c)));
    }

    [Fact]
    public void Splits_are_deterministic_by_seed_and_differ_across_seeds()
    {
        var a = DataSplits.PerClass(Labels, 10, 0.1, new Random(1));
        var b = DataSplits.PerClass(Labels, 10, 0.1, new Random(1));
        var c = DataSplits.PerClass(Labels, 10, 0.1, new Random(2));
        Assert.Equal(a.Train, b.Train);
        Assert.NotEqual(a.Train, c.Train);
    }

    [Fact]
    public void Holdout_is_stratified()
    {
        var (train, val) = DataSplits.Holdout(Labels, 0.1, new Random(0));
        Assert.Equal(100, val.Length);
        Assert.Equal(900, train.Length);
        Assert.All(Enumerable.Range(0, 10), c => Assert.Equal(10, val.Count(i => Labels[i] == c)));
    }
}
