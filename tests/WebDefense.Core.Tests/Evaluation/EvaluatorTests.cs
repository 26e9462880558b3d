using TorchSharp;
using WebDefense.Core.Data;
using WebDefense.Core.Data.Triggers;
using WebDefense.Core.Evaluation;
using WebDefense.Core.Models;
using WebDefense.Core.Tests.Data;
using static TorchSharp.torch;

namespace WebDefense.Core.Tests.Evaluation;

/// <summary>
/// ACC/ASR/RA of a known model on real Fashion-MNIST, checked against a computation by hand (plain C# loops,
/// no torch). The model is a nearest-centroid classifier written as one linear layer:
/// logit_c = x·μ_c − ½‖μ_c‖², with μ_c the mean training image of class c (pixels in [0,1]).
/// </summary>
public class EvaluatorTests
{
    private const int Pixels = 28 * 28;

    private static readonly Lazy<double[][]> Centroids = new(() =>
    {
        using var train = IdxReader.Read(Path.Combine(TestData.FashionMnistDir, "train-images-idx3-ubyte.gz"), Path.Combine(TestData.FashionMnistDir, "train-labels-idx1-ubyte.gz"));
        var pixels = train.Images.data<byte>().ToArray();
        var labels = train.Labels.data<long>().ToArray();
        var sums = new double[10][];
        var counts = new int[10];
        for (var c = 0; c < 10; c++) sums[c] = new double[Pixels];
        for (var i = 0; i < labels.Length; i++)
        {
            counts[labels[i]]++;
            for (var j = 0; j < Pixels; j++) sums[labels[i]][j] += pixels[i * Pixels + j] / 255.0;
        }

        return sums.Select((s, c) => s.Select(v => v / counts[c]).ToArray()).ToArray();
    });

    private static Classifier CentroidModel()
    {
        var mu = Centroids.Value;
        var linear = nn.Linear(Pixels, 10);
        using (no_grad())
        {
            linear.weight!.copy_(tensor(mu.SelectMany(r => r.Select(v => (float)v)).ToArray()).view(10, Pixels));
            linear.bias!.copy_(tensor(mu.Select(r => (float)(-0.5 * r.Sum(v => v * v))).ToArray()));
        }

        var module = nn.Sequential(("flatten", nn.Flatten()), ("fc", linear));
        return new Classifier(module, "centroid", 10, InputSpec.Grey28);
    }

    /// <summary>Hand prediction; also the gap between the two best scores (to spot float near-ties).</summary>
    private static (long Prediction, double Margin) HandPredict(byte[] pixels, int sample)
    {
        var mu = Centroids.Value;
        var scores = new double[10];
        for (var c = 0; c < 10; c++)
        {
            double dot = 0, norm = 0;
            for (var j = 0; j < Pixels; j++)
            {
                dot += pixels[sample * Pixels + j] / 255.0 * mu[c][j];
                norm += mu[c][j] * mu[c][j];
            }

            scores[c] = dot - 0.5 * norm;
        }

        var order = Enumerable.Range(0, 10).OrderByDescending(c => scores[c]).ToArray();
        return (order[0], scores[order[0]] - scores[order[1]]);
    }

    [Fact]
    public void Acc_asr_ra_match_a_hand_computation_on_fashion_mnist()
    {
        using var test = TestData.FashionMnistTest();
        using var model = CentroidModel();
        using var backdoor = BackdoorTestSet.Build(test, PatchTrigger.BadNets, targetLabel: 0);
        var metrics = Evaluator.Evaluate(model, test, backdoor.Data, targetLabel: 0);

        var cleanPixels = test.Images.data<byte>().ToArray();
        var cleanLabels = test.Labels.data<long>().ToArray();
        var bdPixels = backdoor.Data.Images.data<byte>().ToArray();
        var bdLabels = backdoor.Data.Labels.data<long>().ToArray();
        int correct = 0, toTarget = 0, recovered = 0, nearTies = 0;
        for (var i = 0; i < cleanLabels.Length; i++)
        {
            var (p, margin) = HandPredict(cleanPixels, i);
            if (p == cleanLabels[i]) correct++;
            if (margin < 1e-4) nearTies++;
        }

        for (var i = 0; i < bdLabels.Length; i++)
        {
            var (p, margin) = HandPredict(bdPixels, i);
            if (p == 0) toTarget++;
            if (p == bdLabels[i]) recovered++;
            if (margin < 1e-4) nearTies++;
        }

        Assert.Equal(10_000, metrics.CleanCount);
        Assert.Equal(9_000, metrics.BackdoorCount);
        Assert.True(nearTies <= 5, $"{nearTies} near-ties make float and double disagree");
        Assert.InRange(metrics.Acc, (correct - nearTies) / 10_000.0, (correct + nearTies) / 10_000.0);
        Assert.InRange(metrics.Asr!.Value, (toTarget - nearTies) / 9_000.0, (toTarget + nearTies) / 9_000.0);
        Assert.InRange(metrics.Ra!.Value, (recovered - nearTies) / 9_000.0, (recovered + nearTies) / 9_000.0);
        // A nearest-centroid classifier is a weak but real model: about 68% on Fashion-MNIST.
        Assert.InRange(metrics.Acc, 0.6, 0.75);
    }

    [Fact]
    public void Native_memory_stays_flat_over_1000_evaluation_batches()
    {
        using var test = TestData.FashionMnistTest();
        using var model = CentroidModel();
        Evaluator.Predict(model, test.Images, batchSize: 50); // warm-up: allocator pools, lazy init
        var liveBefore = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        var rssBefore = ResidentBytes();
        for (var pass = 0; pass < 5; pass++)
        {
            Evaluator.Predict(model, test.Images, batchSize: 50); // 200 batches per pass
        }

        var rssGrowth = ResidentBytes() - rssBefore;
        Assert.Equal(liveBefore, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        // A leaked normalised batch alone would be 50×784×4 B ≈ 157 KB per batch, 157 MB over 1,000 batches.
        Assert.True(rssGrowth < 40L << 20, $"resident memory grew by {rssGrowth >> 20} MB over 1,000 batches");
    }

    private static long ResidentBytes()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
    }
}
