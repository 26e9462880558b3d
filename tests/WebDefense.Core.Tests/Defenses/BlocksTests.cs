using TorchSharp;
using WebDefense.Core.Data;
using WebDefense.Core.Defenses.Blocks;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Models;
using WebDefense.Core.Models.Zoo;
using static TorchSharp.torch;

namespace WebDefense.Core.Tests.Defenses;

public class BlocksTests
{
    [Fact]
    public void Topology_finds_convs_batchnorms_and_which_bn_normalises_which_conv()
    {
        using var small = ModelZoo.CreateClassifier("smallcnn", 10, InputSpec.Grey28);
        var t = ModelTopology.Discover(small);
        Assert.Equal(["conv1", "conv2", "conv3"], t.Convs.Select(c => c.Name));
        Assert.Equal(["bn1", "bn2", "bn3"], t.Convs.Select(c => c.BatchNorm));
        Assert.Equal(16 + 32 + 64, t.TotalBatchNormChannels);

        using var preact = ModelZoo.CreateClassifier("preactresnet18", 10, InputSpec.Cifar10);
        var p = ModelTopology.Discover(preact);
        Assert.Equal(20, p.Convs.Count);
        Assert.Equal(4800, p.TotalFilters);          // reference-algorithms §2: Grad-Prune's pool
        Assert.Equal(16, p.BatchNorms.Count);
        Assert.Equal(3392, p.TotalBatchNormChannels);
        // In a pre-activation block, conv1's output goes straight into bn2; conv2's is added to the shortcut first.
        Assert.Equal("layer2.0.bn2", p.Convs.Single(c => c.Name == "layer2.0.conv1").BatchNorm);
        Assert.Null(p.Convs.Single(c => c.Name == "layer2.0.conv2").BatchNorm);
        Assert.Null(p.Convs.Single(c => c.Name == "layer2.0.shortcut.0").BatchNorm);
    }

    [Fact]
    public void Pruning_a_filter_zeroes_its_weights_and_its_own_bn_gamma_as_the_authors_do_and_the_mask_keeps_them_zero()
    {
        using var model = ModelZoo.CreateClassifier("smallcnn", 10, InputSpec.Grey28);
        var t = ModelTopology.Discover(model);
        var conv2 = t.Convs.Single(c => c.Name == "conv2");
        var bn2 = t.BatchNorm("bn2")!;
        using (no_grad()) bn2.Bias.fill_(0.3f);
        var mask = new FilterMask(t);
        mask.Prune(conv2, 5);

        using (no_grad())
        {
            model.Module.eval();
            // Weights and γ are zero; β stays, so after bn2 the channel is the constant β (the authors zero γ only).
            Assert.Equal(0f, conv2.Weight[5].abs().sum().item<float>());
            Assert.Equal(0f, bn2.Weight[5].item<float>());
            Assert.Equal(0.3f, bn2.Bias[5].item<float>());
            Assert.NotEqual(0f, bn2.Weight[4].item<float>());
            conv2.Weight[5].fill_(1f);
            bn2.Weight[5].fill_(1f);
        }

        mask.Apply();
        Assert.Equal(0f, conv2.Weight[5].abs().sum().item<float>());
        Assert.Equal(0f, bn2.Weight[5].item<float>());
        Assert.Equal(1, mask.Count);
    }

    [Fact]
    public void A_torchscript_graph_pairs_its_convs_with_the_bns_they_feed_as_the_native_model_does_and_is_left_unchanged()
    {
        var declaration = new ModelDeclaration("preactresnet18", 10, InputSpec.Create(3, 32, 32));
        using var native = ModelLoader.Load(WebDefense.Core.Tests.Models.Fixtures.Resolve("preactresnet18.pt"), declaration);
        using var script = ModelLoader.Load(WebDefense.Core.Tests.Models.Fixtures.Resolve("preactresnet18.ts.pt"), declaration with { Architecture = null });
        Assert.True(script.Classifier.IsTorchScript);
        using var x = rand(2, 3, 32, 32, generator: new Generator(3));
        using var before = Logits(script.Classifier, x);

        var traced = ModelTopology.Discover(native.Classifier).Convs.ToDictionary(c => c.Name, c => c.BatchNorm);
        var probed = ModelTopology.Discover(script.Classifier);
        Assert.Equal(traced, probed.Convs.ToDictionary(c => c.Name, c => c.BatchNorm));
        Assert.Equal(9, probed.Convs.Count(c => c.BatchNorm is not null)); // the stem and every block's conv1; conv2s and shortcuts feed a sum
        Assert.Equal("layer2.0.bn2", probed.Convs.Single(c => c.Name == "layer2.0.conv1").BatchNorm);

        // The probe leaves weights and BN statistics as they were.
        using var after = Logits(script.Classifier, x);
        Assert.True(before.eq(after).all().item<bool>());

        // Pruning on the TorchScript model zeroes the own BN's γ there too.
        var conv = probed.Convs.Single(c => c.Name == "layer2.0.conv1");
        new FilterMask(probed).Prune(conv, 7);
        Assert.Equal(0f, probed.BatchNorm("layer2.0.bn2")!.Weight[7].item<float>());
    }

    private static Tensor Logits(Classifier model, Tensor x)
    {
        using var noGrad = no_grad();
        model.Module.eval();
        return model.Forward(x).detach().clone();
    }

    [Fact]
    public void Bn_mask_gradient_matches_finite_differences_and_masks_stay_in_0_1()
    {
        torch.random.manual_seed(0);
        using var model = ModelZoo.CreateClassifier("smallcnn", 10, InputSpec.Grey28);
        model.Module.eval(); // deterministic forward for the finite-difference check
        var t = ModelTopology.Discover(model);
        using var x = rand(8, 1, 28, 28);
        using var y = tensor(new long[] { 0, 1, 2, 3, 4, 5, 6, 7 });
        double Loss()
        {
            using var noGrad = no_grad();
            return nn.functional.cross_entropy(model.Forward(x), y).item<float>();
        }

        using var mask = new BatchNormMask(t);
        mask.Write();
        model.Module.zero_grad();
        nn.functional.cross_entropy(model.Forward(x), y).backward();
        var gamma = t.BatchNorms[1].Weight.detach().clone();
        var analytic = (t.BatchNorms[1].Weight.grad! * gamma)[7].item<float>();

        // ∂L/∂m_k by central differences: γ'_k = γ_k (1 ± ε).
        const float eps = 1e-2f;
        using (no_grad()) t.BatchNorms[1].Weight[7].fill_(gamma[7].item<float>() * (1 + eps));
        var up = Loss();
        using (no_grad()) t.BatchNorms[1].Weight[7].fill_(gamma[7].item<float>() * (1 - eps));
        var down = Loss();
        Assert.Equal((up - down) / (2 * eps), analytic, 3);

        mask.Write();
        model.Module.zero_grad();
        nn.functional.cross_entropy(model.Forward(x), y).backward();
        mask.Step(learningRate: 1000, momentum: 0.9); // absurd step: clipping must hold
        Assert.All(mask.Values(), v => Assert.InRange(v.Value, 0f, 1f));
    }

    [Fact]
    public void Sweep_selects_the_largest_level_within_the_validation_acc_bound()
    {
        var accs = new[] { 0.90, 0.90, 0.89, 0.88, 0.86, 0.80 };
        var levels = accs.Select((_, i) => new PruningSweep.Level(i * 10, i * 0.1)).ToList();
        var current = 0;
        var result = PruningSweep.Run(levels, l => current = l.Units / 10, () => new ValidationScores(accs[current], null, null, 0, null),
            maxAccDrop: 0.03, "units", NullDefenseObserver.Instance, default);
        Assert.Equal(3, result.ChosenIndex); // 0.88 is within 3 points of 0.90; 0.86 is not
        Assert.Contains("within 3 points", result.Rule);
    }

    [Fact]
    public void Number_sweep_prunes_one_channel_at_a_time_through_the_low_mask_end_then_in_strides()
    {
        using var preact = ModelZoo.CreateClassifier("preactresnet18", 10, InputSpec.Cifar10);
        var layers = ModelTopology.Discover(preact).BatchNorms;
        var masks = layers.SelectMany(b => Enumerable.Range(0, b.Channels).Select(c => (b, c, (float)((c * 7919 % 1000) / 1000.0)))).ToList();
        var order = MaskPruning.Ascending(masks);
        Assert.Equal(3392, order.Count);
        Assert.True(order.Zip(order.Skip(1)).All(p => p.First.Value <= p.Second.Value));

        var levels = MaskPruning.Levels(order, "number", 0.9, 0.05);
        var units = levels.Select(l => l.Units).ToList();
        Assert.Equal(0, units[0]);
        Assert.Equal(Enumerable.Range(0, MaskPruning.FineLevels + 1), units.Take(MaskPruning.FineLevels + 1)); // 0, 1, …, 200
        var stride = (int)Math.Ceiling(3392 / 200.0);                                                          // 17
        Assert.All(units.Skip(MaskPruning.FineLevels).Zip(units.Skip(MaskPruning.FineLevels + 1)), p => Assert.Equal(stride, p.Second - p.First));
        Assert.True(units[^1] <= (int)(0.9 * 3392) && units[^1] + stride > (int)(0.9 * 3392));
        Assert.All(levels.Skip(1), l => Assert.Equal(order[l.Units - 1].Value, l.Threshold));

        // A small network: every channel up to the maximum, one by one.
        Assert.Equal(Enumerable.Range(0, 101), MaskPruning.Levels(order.Take(112).ToList(), "number", 0.9, 0.05).Select(l => l.Units));

        // By threshold: every channel with mask ≤ t for t = 0, 0.05, …
        var byThreshold = MaskPruning.Levels(order, "threshold", 0.9, 0.05);
        Assert.Equal(19, byThreshold.Count - 1);
        Assert.All(byThreshold.Skip(1), l => Assert.Equal(order.Count(m => m.Value <= l.Threshold), l.Units));
    }
}
