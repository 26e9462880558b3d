using WebDefense.Core.Defenses;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Scanning;

namespace WebDefense.Core.Tests.Defenses;

/// <summary>CLP on a TorchScript model cannot pair by tracing: it says so, in the log and in the findings, instead of silently switching.</summary>
[Collection(SeededTorchCollection.Name)]
public class ClpPairingTests(BackdooredFashionMnist data) : IClassFixture<BackdooredFashionMnist>
{
    [Fact]
    public void A_torchscript_model_is_paired_in_module_order_and_the_run_says_so()
    {
        using var loaded = data.Load("fmnist-smallcnn-badnets.ts.pt");
        using var clean = data.Clean(5, seed: 1);
        var log = new List<string>();
        var request = data.Request(new ClpDefense(), loaded.Classifier, clean, withBackdoor: true,
            parameters: new Dictionary<string, object> { [ScanAssistance.ScanParameter] = false }) with { Observer = new LogRecorder(log) };
        using var result = DefenseRunner.Run(request);
        Assert.Equal("module-order", result.Findings["pairing"]);
        Assert.Equal("traced", result.Findings["pairing_requested"]);
        Assert.Contains(log, l => l.Contains("pairing 'traced' was asked for", StringComparison.Ordinal));
    }

    private sealed class LogRecorder(List<string> log) : IDefenseObserver
    {
        public void StepStarted(int index, int count, string step) { }
        public void Progress(double fractionOfStep, string message) { }
        public void Point(TrajectoryPoint point) { }
        public void Log(string message) => log.Add(message);
    }
}
