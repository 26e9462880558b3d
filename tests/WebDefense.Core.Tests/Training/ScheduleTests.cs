using WebDefense.Core.Training;

namespace WebDefense.Core.Tests.Training;

public class ScheduleTests
{
    [Fact]
    public void Multistep_and_cosine_follow_pytorch()
    {
        var multi = LearningRateSchedule.MultiStep([10, 20], 0.1);
        Assert.Equal(0.01, multi.At(0.01, 9), 12);
        Assert.Equal(0.001, multi.At(0.01, 10), 12);
        Assert.Equal(0.0001, multi.At(0.01, 20), 12);
        var cosine = LearningRateSchedule.Cosine(100);
        Assert.Equal(0.01, cosine.At(0.01, 0), 12);
        Assert.Equal(0.005, cosine.At(0.01, 50), 12);
    }

    [Fact]
    public void Batch_plan_drops_the_last_partial_batch_but_keeps_a_lone_one()
    {
        Assert.Equal([128, 128], BatchPlan.Epoch(300, 128, true, dropLast: true, new Random(0)).Select(b => b.Length));
        Assert.Equal([128, 128, 44], BatchPlan.Epoch(300, 128, true, dropLast: false, new Random(0)).Select(b => b.Length));
        Assert.Equal([50], BatchPlan.Epoch(50, 128, true, dropLast: true, new Random(0)).Select(b => b.Length));
        Assert.Equal(Enumerable.Range(0, 300).Select(i => (long)i), BatchPlan.Epoch(300, 128, true, false, new Random(5)).SelectMany(b => b).Order());
    }
}
