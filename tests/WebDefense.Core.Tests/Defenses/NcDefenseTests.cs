using WebDefense.Core.Data;
using WebDefense.Core.Defenses;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Scanning;
using Xunit.Abstractions;

namespace WebDefense.Core.Tests.Defenses;

/// <summary>NC unlearning (Neural Cleanse's mitigation) on the demo model: with the scan's reconstructed trigger, a known trigger, or nothing.</summary>
[Collection(SeededTorchCollection.Name)]
public class NcDefenseTests(BackdooredFashionMnist data, ITestOutputHelper output) : IClassFixture<BackdooredFashionMnist>
{
    [Fact]
    public void With_its_defaults_and_no_trigger_it_removes_the_demo_backdoor_through_the_scan()
    {
        using var loaded = data.Load();
        using var clean = data.Clean(50, seed: 1);
        using var result = DefenseRunner.Run(data.Request(new NcDefense(), loaded.Classifier, clean, withBackdoor: false, seed: 1));
        output.WriteLine($"{result.Before} → {result.After}; estimated {result.EstimatedAsrBefore:P1} → {result.EstimatedAsrAfter:P1}; {result.Chosen.Rule}");

        Assert.NotNull(result.Scan);
        Assert.Equal(0, result.Scan.TargetLabel);
        Assert.True(result.Before!.Asr > 0.9, $"the fixture should be backdoored: ASR {result.Before.Asr:P1}");
        // The real trigger (a 3×3 patch) is gone although only a ~2-px reconstruction of it was unlearnt, at little ACC.
        Assert.True(result.After!.Asr <= 0.10, $"ASR after {result.After.Asr:P1}");
        Assert.True(result.Before.Acc - result.After.Acc <= 0.03, $"ACC {result.Before.Acc:P1} → {result.After.Acc:P1}");
        Assert.Equal("removed", result.Outcome.Outcome);
        Assert.Equal("measured", result.Outcome.Basis);
        Assert.True(result.EstimatedAsrAfter <= 0.10, $"estimated ASR after {result.EstimatedAsrAfter:P1}");
        // 450 training images after the 10% hold-out, half of them stamped; the epoch was chosen for its estimated ASR.
        Assert.Equal(225, result.Findings["triggered_samples"]);
        Assert.Contains("validation ASR is at most 10%", result.Chosen.Rule);
        Assert.Contains(result.Trajectory, p => p.Values?.ContainsKey("estimated_val_asr") == true);
    }

    [Fact]
    public void A_known_trigger_is_unlearnt_without_a_scan()
    {
        using var loaded = data.Load();
        using var clean = data.Clean(20, seed: 2);
        using var result = DefenseRunner.Run(data.Request(new NcDefense(), loaded.Classifier, clean, withBackdoor: true, seed: 2,
            new Dictionary<string, object> { ["epochs"] = 30 }));
        output.WriteLine($"{result.Before} → {result.After}; {result.Chosen.Rule}");

        Assert.Null(result.Scan);
        Assert.Equal(90, result.Findings["triggered_samples"]); // 180 training images, half of them stamped
        Assert.True(result.After!.Asr <= 0.10, $"ASR after {result.After.Asr:P1}");
    }

    [Fact]
    public void Without_backdoor_samples_and_with_the_scan_off_it_refuses_before_any_work()
    {
        using var loaded = data.Load();
        using var clean = data.Clean(5, seed: 3);
        var request = data.Request(new NcDefense(), loaded.Classifier, clean, withBackdoor: false, parameters: new Dictionary<string, object> { [ScanAssistance.ScanParameter] = false });
        var error = Assert.Throws<DefenseInputException>(() => DefenseRunner.Validate(request));
        Assert.Contains("needs backdoor samples", error.Message);
        Assert.Contains(DefenseCatalog.All, d => d.Name == "nc");
    }

    [Fact]
    public void Uploaded_triggered_images_that_are_not_pairs_of_the_clean_data_are_drawn_at_the_ratio()
    {
        using var loaded = data.Load();
        using var clean = data.Clean(10, seed: 4);
        using var other = data.Clean(3, seed: 5);
        using var triggered = BackdooredFashionMnist.Trigger.ApplyWithTrueLabels(other);
        var request = data.Request(new NcDefense(), loaded.Classifier, clean, withBackdoor: false, seed: 4,
            new Dictionary<string, object> { ["epochs"] = 2, ["unlearning_ratio"] = 0.5 }) with { Backdoor = new BackdoorSamples(triggered, PairedWithClean: false) };
        using var result = DefenseRunner.Run(request);
        // 90 training images: half of them would be stamped, but only the 30 uploaded triggered images exist.
        Assert.Equal(30, result.Findings["triggered_samples"]);
        Assert.Equal(90, result.Findings["train_samples"]);
    }
}
