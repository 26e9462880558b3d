using WebDefense.Core.Data;
using WebDefense.Core.Models;
using WebDefense.Core.Training;
using static TorchSharp.torch;

namespace WebDefense.Core.Tests.Training;

public class TrainingLoopTests
{
    /// <summary>One SGD step on a single weight w = 1 whose loss is w itself (gradient 1), lr 0.1, weight decay 0.5, no momentum.</summary>
    private static float OneStep(bool maximize)
    {
        var linear = nn.Linear(1, 1, hasBias: false);
        using (no_grad()) linear.weight!.fill_(1f);
        using var model = new Classifier(nn.Sequential(("flatten", nn.Flatten()), ("fc", linear)), "test-linear", 1, InputSpec.Create(1, 1, 1));
        using var data = new ImageDataset(zeros(1, 1, 1, 1, ScalarType.Byte), zeros(1, ScalarType.Int64));
        new TrainingLoop
        {
            Model = model, Data = data, Maximize = maximize,
            Options = new SgdOptions { LearningRate = 0.1, Momentum = 0, WeightDecay = 0.5, BatchSize = 1, Epochs = 1 },
            Loss = (m, _) => new BatchLoss(m.Module.parameters().First().sum(), null),
        }.Run(new Random(0));
        return linear.weight!.item<float>();
    }

    [Fact]
    public void Gradient_ascent_applies_weight_decay_as_pytorch_does()
    {
        // PyTorch SGD(maximize=True): d = −g + wd·w = −0.5 → w − lr·d = 1.05. TorchSharp 0.107's maximize flag gives 1.15.
        Assert.Equal(1.05f, OneStep(maximize: true), 5);
        // Descent: d = g + wd·w = 1.5 → 0.85.
        Assert.Equal(0.85f, OneStep(maximize: false), 5);
    }

    [Fact]
    public void An_epoch_keeps_the_last_partial_batch_by_default_as_pytorchs_data_loader()
    {
        Assert.False(new SgdOptions().DropLast);
        // 450 images in batches of 128: 4 steps (the last of 66), not 3.
        Assert.Equal(4, BatchPlan.Epoch(450, 128, shuffle: true, new SgdOptions().DropLast, new Random(0)).Count);
        Assert.Equal(66, BatchPlan.Epoch(450, 128, shuffle: true, new SgdOptions().DropLast, new Random(0))[^1].Length);
    }

    [Fact]
    public void The_starting_state_is_kept_when_it_is_a_candidate_and_no_epoch_beats_it()
    {
        // Every epoch moves w from 1 towards 0 (loss w, lr 0.1); validation prefers w close to 1, so no epoch beats the start.
        float Train(bool startIsCandidate, out IReadOnlyList<EpochReport> reports)
        {
            var linear = nn.Linear(1, 1, hasBias: false);
            using (no_grad()) linear.weight!.fill_(1f);
            using var model = new Classifier(nn.Sequential(("flatten", nn.Flatten()), ("fc", linear)), "test-linear", 1, InputSpec.Create(1, 1, 1));
            using var data = new ImageDataset(zeros(1, 1, 1, 1, ScalarType.Byte), zeros(1, ScalarType.Int64));
            reports = new TrainingLoop
            {
                Model = model, Data = data, StartIsCandidate = startIsCandidate, Patience = 2,
                Options = new SgdOptions { LearningRate = 0.1, Momentum = 0, WeightDecay = 0, BatchSize = 1, Epochs = 5 },
                Loss = (m, _) => new BatchLoss(m.Module.parameters().First().sum(), null),
                Validate = () => Math.Abs(1 - linear.weight!.item<float>()),
            }.Run(new Random(0));
            return linear.weight!.item<float>();
        }

        Assert.Equal(1f, Train(startIsCandidate: true, out var kept), 5);
        Assert.DoesNotContain(kept, r => r.Improved);
        Assert.Equal(2, kept.Count); // patience 2 counted from the start
        // Without it the first epoch is the best candidate: w = 0.9.
        Assert.Equal(0.9f, Train(startIsCandidate: false, out var first), 5);
        Assert.True(first[0].Improved);
    }
}
