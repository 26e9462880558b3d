using WebDefense.Core.Evaluation;

namespace WebDefense.Core.Tests.Evaluation;

public class MetricsTests
{
    [Fact]
    public void Attack_metrics_skip_target_class_samples()
    {
        long[] truth = [0, 0, 1, 2, 3, 4];
        long[] predicted = [0, 1, 0, 2, 0, 4];
        var (asr, ra, kept) = Evaluator.AttackMetrics(predicted, truth, targetLabel: 0);
        Assert.Equal(4, kept);
        Assert.Equal(2 / 4.0, asr);
        Assert.Equal(2 / 4.0, ra);
    }

    [Fact]
    public void Der_follows_backdoorbench()
    {
        var before = new BackdoorMetrics(0.92, 0.98, 0.01, 100, 90);
        var after = new BackdoorMetrics(0.90, 0.03, 0.85, 100, 90);
        Assert.Equal(((0.98 - 0.03) - (0.92 - 0.90) + 1) / 2, BackdoorMetrics.Der(before, after)!.Value, 12);
        // An accuracy gain and an ASR rise are clipped at zero.
        var worse = new BackdoorMetrics(0.95, 0.99, 0.0, 100, 90);
        Assert.Equal(0.5, BackdoorMetrics.Der(before, worse)!.Value, 12);
        Assert.Null(BackdoorMetrics.Der(before, after with { Asr = null }));
    }
}
