using TorchSharp;
using WebDefense.Core.Data;
using WebDefense.Core.Data.Triggers;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Models;
using WebDefense.Core.Scanning;
using WebDefense.Core.Tests.Data;
using WebDefense.Core.Tests.Defenses;
using WebDefense.Core.Training;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace WebDefense.Core.Tests.Scanning;

public class AnomalyIndexTests
{
    [Fact]
    public void Median_absolute_deviation_and_the_low_outlier()
    {
        // Norms of 10 labels; label 3 is the small outlier. median = 10, |n − 10| = 2,1,0,8,0,1,1,0,2,1 → median 1 → MAD 1.4826.
        double[] norms = [12, 11, 10, 2, 10, 9, 11, 10, 8, 9];
        var result = AnomalyIndex.Compute(norms);
        Assert.Equal(10, result.Median, 12);
        Assert.Equal(1.4826, result.Mad, 12);
        Assert.Equal(8 / 1.4826, result.Indices[3], 9);
        Assert.Equal(-2 / 1.4826, result.Indices[0], 9); // larger than the median: negative, never flagged
        Assert.Equal([3], result.Indices.Select((a, i) => (a, i)).Where(x => x.a > AnomalyIndex.DefaultThreshold).Select(x => x.i));
    }

    [Fact]
    public void Equal_norms_flag_nothing()
    {
        var result = AnomalyIndex.Compute([5.0, 5.0, 5.0, 5.0]);
        Assert.All(result.Indices, a => Assert.Equal(0, a));
        Assert.Throws<ArgumentException>(() => AnomalyIndex.Compute([1.0, 2.0]));
    }
}

public class MaskTriggerTests
{
    [Fact]
    public void Stamps_with_the_mask_and_pattern_and_round_trips_as_json()
    {
        // 1×1×2×2 image of 100s; mask 1 at (0,0), 0.5 (128/255) at (1,1); pattern 200 everywhere.
        using var mask = tensor(new float[] { 1, 0, 0, 128 / 255f }, [1, 2, 2]);
        using var pattern = full(1, 2, 2, 200 / 255f);
        var trigger = MaskTrigger.FromTensors(mask, pattern);
        var parsed = Assert.IsType<MaskTrigger>(TriggerSpec.FromJson(trigger.ToJson()));
        using var images = full(1, 1, 2, 2, 100, ScalarType.Byte);
        using var stamped = parsed.ApplyTo(images);
        // (1 − m)·100 + m·200, truncated: 200, 100, 100, 100 + 128/255·100 = 150.19 → 150.
        Assert.Equal(new byte[] { 200, 100, 100, 150 }, stamped.data<byte>().ToArray());
        Assert.Equal(1 + 128 / 255.0, parsed.MaskNorm(), 9);
        var wrongSize = Assert.Throws<InvalidTriggerException>(() => parsed.Validate(1, 3, 3));
        Assert.Contains("2×2", wrongSize.Message);
    }
}

public class TriggerInversionTests
{
    /// <summary>A 3-class linear model on 1×4×4 images: class 1 wins only when pixel (0,0) is bright; dark images are class 0.</summary>
    private static Classifier OnePixelBackdoor()
    {
        var linear = nn.Linear(16, 3);
        using (no_grad())
        {
            linear.weight!.zero_();
            linear.bias!.copy_(tensor(new float[] { 1, -4, -2 }));
            linear.weight[1, 0] = tensor(10f);   // class 1 ← pixel (0,0)
            linear.weight[2] = full(16, 0.4f);   // class 2 ← the whole image (needs ~8 bright pixels)
        }

        var module = nn.Sequential(("flatten", nn.Flatten()), ("fc", linear));
        return new Classifier(module, "test-linear", 3, InputSpec.Create(1, 4, 4));
    }

    [Fact]
    public void Finds_the_smallest_mask_that_flips_the_label()
    {
        using var model = OnePixelBackdoor();
        using var dark = zeros(64, 1, 4, 4);
        var options = new InversionOptions { Steps = 240, BatchSize = 16 };
        var toOne = TriggerInversion.Invert(model, dark, 1, options, new Random(0));
        var toTwo = TriggerInversion.Invert(model, dark, 2, options, new Random(0));

        Assert.True(toOne.ReachedThreshold);
        Assert.True(toTwo.ReachedThreshold);
        // Label 1 needs pixel (0,0) at about 0.5 → a mask of about half a pixel, where label 2 needs far more.
        Assert.InRange(toOne.MaskNorm, 0.3, 1.5);
        Assert.True(toTwo.MaskNorm > 2 * toOne.MaskNorm, $"label 2's mask {toTwo.MaskNorm:0.00} px vs label 1's {toOne.MaskNorm:0.00} px");
        var (mask, pattern) = toOne.Trigger.Tensors(1);
        using (mask)
        using (pattern)
        {
            var m = mask.to_type(ScalarType.Float32).flatten();
            Assert.Equal(0, m.argmax().item<long>());
            Assert.True(m[0].item<float>() > 0.6f * m.sum().item<float>(), "the mask's weight sits on pixel (0,0)");
        }
    }
}

/// <summary>The scan on real Fashion-MNIST models: the attack lab's BadNets demo model and a model trained without poison.</summary>
[Collection(SeededTorchCollection.Name)]
public class BackdoorScanIntegrationTests(BackdooredFashionMnist data, ITestOutputHelper output) : IClassFixture<BackdooredFashionMnist>
{
    private static readonly DefenseParameters Defaults = DefenseParameters.Resolve(new BackdoorScan().Parameters);

    private void Print(ScanResult scan)
    {
        output.WriteLine(scan.Summary + $" in {scan.Seconds:0} s");
        foreach (var l in scan.Labels) output.WriteLine($"{l.Label}: {l.MaskNorm:0.00} px after {l.Epochs} epochs, index {l.AnomalyIndex:0.00}, held-out ASR {l.HoldoutAsr:P1}");
    }

    [Fact]
    public void Finds_the_demo_backdoor_target_and_a_trigger_over_the_patch()
    {
        using var loaded = data.Load();
        using var clean = data.Clean(20, seed: 1);
        var scan = BackdoorScan.Run(loaded.Classifier, clean, Defaults, new Random(1), NullDefenseObserver.Instance, CancellationToken.None);
        Print(scan);

        Assert.True(scan.Suspected);
        Assert.Equal(0, scan.TargetLabel);
        Assert.True(scan.EstimatedAsr > 0.9, $"the reconstructed trigger sends {scan.EstimatedAsr:P1} of held-out images to 0");
        var (mask, pattern) = scan.Trigger!.Tensors(1);
        using (mask)
        using (pattern)
        {
            // The real patch is the bottom-right 3×3; most of the mask's weight falls on the bottom-right 5×5 corner.
            var m = mask.to_type(ScalarType.Float32).squeeze();
            var corner = m.narrow(0, 23, 5).narrow(1, 23, 5).sum().item<float>();
            Assert.True(corner > 0.5f * m.sum().item<float>(), $"corner holds {corner:0.0} of {m.sum().item<float>():0.0}");
        }

        // The reconstructed trigger works on the disjoint test half too, as the real patch does.
        Assert.True(BackdoorScan.EstimateAsr(loaded.Classifier, data.Test, scan.Trigger, 0) > 0.9);
    }

    [Fact]
    public void Does_not_flag_a_model_trained_without_poison()
    {
        using var train = data.Pool.Subset(Enumerable.Range(0, 4000).Select(i => (long)i).ToArray());
        using var model = AttackLab.TrainClean("smallcnn", 10, InputSpec.Grey28, train, AttackLab.Recipe(4, InputSpec.Grey28), seed: 3);
        using var clean = data.Clean(20, seed: 1);
        var scan = BackdoorScan.Run(model.Model, clean, Defaults, new Random(1), NullDefenseObserver.Instance, CancellationToken.None);
        Print(scan);
        Assert.False(scan.Suspected, scan.Summary);
        Assert.Null(scan.Trigger);
    }
}

public class FlagRuleTests
{
    private static readonly bool[] AllReached = Enumerable.Repeat(true, 10).ToArray();

    [Fact]
    public void The_demo_target_is_an_outlier_on_the_log_scale_where_the_linear_index_misses_it()
    {
        // Mask norms (px) the service's scan of the demo model found on its 500 seeded clean images (seed 1).
        double[] demo = [2.00, 69.52, 52.07, 70.72, 50.74, 52.29, 32.27, 73.49, 21.02, 59.55];
        var linear = BackdoorScan.Flag(demo, AllReached, logScale: false, threshold: 2, maxRatio: 1);
        Assert.Equal(1.89, linear.Anomaly.Indices[0], 2);
        Assert.Empty(linear.Flagged);
        var log = BackdoorScan.Flag(demo, AllReached, logScale: true, threshold: 2, maxRatio: 0.25);
        Assert.True(log.Anomaly.Indices[0] > 7, $"log-scale index {log.Anomaly.Indices[0]:0.00}");
        // Label 8 (bag) is an outlier on the log scale too (index 2.07) but its mask is 40% of the median: not flagged.
        Assert.True(log.Anomaly.Indices[8] > 2);
        Assert.Equal([0], log.Flagged);
        Assert.Equal(52.18, log.MedianNorm, 2);
    }

    [Fact]
    public void A_label_that_never_reached_the_success_threshold_is_never_flagged()
    {
        double[] norms = [2.0, 60, 55, 70, 50, 52, 65, 73, 58, 59];
        var reached = AllReached.ToArray();
        reached[0] = false;
        Assert.Empty(BackdoorScan.Flag(norms, reached, logScale: true, threshold: 2, maxRatio: 0.25).Flagged);
        Assert.Equal([0], BackdoorScan.Flag(norms, AllReached, logScale: true, threshold: 2, maxRatio: 0.25).Flagged);
    }
}
