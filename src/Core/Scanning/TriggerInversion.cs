using TorchSharp;
using WebDefense.Core.Data;
using WebDefense.Core.Data.Triggers;
using WebDefense.Core.Models;
using WebDefense.Core.Runtime;
using WebDefense.Core.Training;
using static TorchSharp.torch;

namespace WebDefense.Core.Scanning;

/// <summary>The settings of one Neural Cleanse inversion (defaults: the authors' gen script, shortened for CPUs; docs/defenses/scan.md).</summary>
public sealed record InversionOptions
{
    /// <summary>Optimiser steps per label (whole epochs: the last epoch is finished); the authors' early stop may end sooner.</summary>
    public int Steps { get; init; } = 300;
    public int BatchSize { get; init; } = 32;
    public double LearningRate { get; init; } = 0.1;
    public double InitCost { get; init; } = 1e-3;
    /// <summary>The inversion counts as successful when this share of the batch images goes to the label.</summary>
    public double AttackSuccessThreshold { get; init; } = 0.99;
    public int Patience { get; init; } = 5;
    public double CostMultiplier { get; init; } = 2.0;
    public int EarlyStopPatience { get; init; } = 10;
    public double EarlyStopThreshold { get; init; } = 0.99;
}

/// <summary>One label's reconstructed trigger: mask (1×H×W) and pattern (C×H×W) in [0,1], and how it did.</summary>
public sealed record InvertedTrigger(int Label, double MaskNorm, double InversionAsr, bool ReachedThreshold, int EpochsRun, MaskTrigger Trigger);

/// <summary>
/// Neural Cleanse's trigger inversion (Wang et al., IEEE S&amp;P 2019, <c>visualizer.py</c>): for a label y, find the
/// smallest mask m and a pattern p such that x' = (1 − m)·x + m·p sends clean images x to y. m = tanh(a)/(2 − ε) + ½ and
/// p = tanh(b)/(2 − ε) + ½ keep both in [0,1]; Adam (β 0.5, 0.9) minimises CE(f(x'), y) + λ·‖m‖₁, and λ is raised
/// (×multiplier) after <c>patience</c> epochs at or above the success threshold and lowered (÷multiplier^1.5) after
/// <c>patience</c> epochs below it. The smallest mask that reached the threshold is kept.
/// </summary>
public static class TriggerInversion
{
    private const double Epsilon = 1e-7;

    public static InvertedTrigger Invert(Classifier model, Tensor unitImages, int label, InversionOptions options, Random random,
        Action<int, int, double, double>? onEpoch = null, CancellationToken cancellation = default)
    {
        var (c, h, w) = ((int)unitImages.shape[1], (int)unitImages.shape[2], (int)unitImages.shape[3]);
        var count = (int)unitImages.shape[0];
        if (count == 0)
        {
            throw new ArgumentException("trigger inversion needs at least one image of another label");
        }

        var frozen = model.Module.parameters().Select(p => (p, p.requires_grad)).ToList();
        var wasTraining = model.Module.training;
        model.Module.eval();
        foreach (var (p, _) in frozen) p.requires_grad = false;
        try
        {
            // The authors start from uniform random mask and pattern; ours are drawn from the seeded Random.
            var maskInit = Enumerable.Range(0, h * w).Select(_ => (float)random.NextDouble()).ToArray();
            var patternInit = Enumerable.Range(0, c * h * w).Select(_ => (float)random.NextDouble()).ToArray();
            using var maskRaw = new TorchSharp.Modules.Parameter(Atanh(maskInit, [1, 1, h, w], model.Device));
            using var patternRaw = new TorchSharp.Modules.Parameter(Atanh(patternInit, [1, c, h, w], model.Device));
            using var optimizer = optim.Adam([maskRaw, patternRaw], options.LearningRate, beta1: 0.5, beta2: 0.9);
            using var target = full(options.BatchSize, label, ScalarType.Int64, device: model.Device);

            var cost = options.InitCost;
            int upCounter = 0, downCounter = 0, earlyStopCounter = 0;
            bool upFlag = false, downFlag = false;
            var bestNorm = double.PositiveInfinity;
            var earlyStopBest = double.PositiveInfinity;
            Tensor? bestMask = null, bestPattern = null;
            var bestAsr = 0.0;
            var epochsRun = 0;
            var epochs = (int)Math.Ceiling(options.Steps / Math.Ceiling(count / (double)options.BatchSize));
            double lastAsr = 0, lastNorm = double.PositiveInfinity;
            try
            {
                for (var epoch = 0; epoch < epochs; epoch++)
                {
                    epochsRun = epoch + 1;
                    // Counters on the model's device, read once per epoch (float64: the same sums as on the host).
                    using var hits = zeros(1, ScalarType.Int64, device: model.Device);
                    using var normSum = zeros(1, ScalarType.Float64, device: model.Device);
                    double seen = 0;
                    var batches = BatchPlan.Epoch(count, options.BatchSize, shuffle: true, dropLast: false, random);
                    foreach (var rows in batches)
                    {
                        cancellation.ThrowIfCancellationRequested();
                        using var quiet = GcQuietRegion.Enter();
                        using var scope = NewDisposeScope();
                        using var index = tensor(rows);
                        var x = model.OnDevice(unitImages.index_select(0, index));
                        var mask = maskRaw.tanh().div(2 - Epsilon).add(0.5);
                        var pattern = patternRaw.tanh().div(2 - Epsilon).add(0.5);
                        var stamped = x.mul(mask.neg().add(1)).add(pattern.mul(mask));
                        var logits = model.Forward(model.Input.NormalizeUnit(stamped));
                        var y = target.narrow(0, 0, rows.Length);
                        var norm = mask.sum();
                        var loss = nn.functional.cross_entropy(logits, y).add(norm.mul(cost));
                        optimizer.zero_grad();
                        loss.backward();
                        optimizer.step();
                        hits.add_(logits.argmax(1).eq(y).sum());
                        seen += rows.Length;
                        normSum.add_(norm.detach().to_type(ScalarType.Float64).mul(rows.Length));
                    }

                    lastAsr = hits.item<long>() / seen;
                    lastNorm = normSum.item<double>() / seen;
                    if (lastAsr >= options.AttackSuccessThreshold && lastNorm < bestNorm)
                    {
                        using var noGrad = no_grad();
                        bestMask?.Dispose();
                        bestPattern?.Dispose();
                        bestMask = maskRaw.tanh().div(2 - Epsilon).add(0.5).detach();
                        bestPattern = patternRaw.tanh().div(2 - Epsilon).add(0.5).detach();
                        bestNorm = lastNorm;
                        bestAsr = lastAsr;
                    }

                    onEpoch?.Invoke(epoch, epochs, lastAsr, lastNorm);

                    // Early stop once the best norm stalls and the cost has moved both ways (the authors' rule).
                    if (!double.IsPositiveInfinity(bestNorm))
                    {
                        earlyStopCounter = bestNorm >= options.EarlyStopThreshold * earlyStopBest ? earlyStopCounter + 1 : 0;
                        earlyStopBest = Math.Min(bestNorm, earlyStopBest);
                    }

                    if (upFlag && downFlag && earlyStopCounter >= options.EarlyStopPatience)
                    {
                        break;
                    }

                    if (lastAsr >= options.AttackSuccessThreshold)
                    {
                        upCounter++;
                        downCounter = 0;
                    }
                    else
                    {
                        upCounter = 0;
                        downCounter++;
                    }

                    if (upCounter >= options.Patience)
                    {
                        upCounter = 0;
                        cost *= options.CostMultiplier;
                        upFlag = true;
                    }
                    else if (downCounter >= options.Patience)
                    {
                        downCounter = 0;
                        cost /= Math.Pow(options.CostMultiplier, 1.5);
                        downFlag = true;
                    }
                }

                var reached = bestMask is not null;
                using var noGrad2 = no_grad();
                using var finalMask = bestMask ?? maskRaw.tanh().div(2 - Epsilon).add(0.5).detach();
                using var finalPattern = bestPattern ?? patternRaw.tanh().div(2 - Epsilon).add(0.5).detach();
                var trigger = MaskTrigger.FromTensors(finalMask.squeeze(0), finalPattern.squeeze(0));
                return new InvertedTrigger(label, reached ? bestNorm : lastNorm, reached ? bestAsr : lastAsr, reached, epochsRun, trigger);
            }
            finally
            {
                bestMask?.Dispose();
                bestPattern?.Dispose();
            }
        }
        finally
        {
            foreach (var (p, requiresGrad) in frozen) p.requires_grad = requiresGrad;
            model.Module.train(wasTraining);
        }
    }

    /// <summary>The unbounded variable whose tanh(·)/(2 − ε) + ½ is the given [0,1] values.</summary>
    private static Tensor Atanh(float[] unit, long[] shape, Device device)
    {
        using var scope = NewDisposeScope();
        return tensor(unit, shape).sub(0.5).mul(2 - Epsilon).atanh().to(device).MoveToOuterDisposeScope();
    }
}
