using TorchSharp;
using WebDefense.Core.Data;
using WebDefense.Core.Defenses;
using WebDefense.Core.Defenses.Blocks;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Models.Zoo;
using WebDefense.Core.Training;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace WebDefense.Core.Tests.Defenses;

/// <summary>FT, FP, NAD and FT-SAM: their distinctive mechanics on real tensors, and one run each on the backdoored Fashion-MNIST model.</summary>
public class BaselineFtDefenseTests(BackdooredFashionMnist data, ITestOutputHelper output) : IClassFixture<BackdooredFashionMnist>
{
    // ---- FP ----

    [Fact]
    public void Fp_ranks_last_conv_channels_by_mean_activation_and_prunes_exactly_the_least_active()
    {
        torch.random.manual_seed(0);
        using var model = ModelZoo.CreateClassifier("smallcnn", 10, InputSpec.Grey28);
        // γ = 0 makes bn3's output its β for every input, so channel c's pooled post-ReLU activation is max(0, β_c).
        var beta = Enumerable.Range(0, 64).Select(c => (float)((c * 37 % 64) - 8) / 10f).ToArray();
        var topology = ModelTopology.Discover(model);
        using (no_grad())
        {
            topology.BatchNorm("bn3")!.Weight.zero_();
            topology.BatchNorm("bn3")!.Bias.copy_(tensor(beta));
        }

        using var images = randint(0, 256, [20, 1, 28, 28]).to_type(ScalarType.Byte);
        using var clean = new ImageDataset(images.clone(), zeros(20, dtype: ScalarType.Int64));
        using var mask = ClassifierInputMask.Discover(model);
        Assert.Equal("fc.weight", mask.Name);
        var activations = mask.MeanActivations(model, clean, batchSize: 7);
        for (var c = 0; c < 64; c++) Assert.Equal(Math.Max(0, beta[c]), activations[c], 5);

        using var before = mask.Weight.detach().clone();
        int[] leastActive = Enumerable.Range(0, 64).OrderBy(c => activations[c]).ThenBy(c => c).Take(10).ToArray();
        // The ten least active: the nine channels with β ≤ 0 (activation 0, ties in index order) and then β = 0.1.
        Assert.Equal(Enumerable.Range(0, 64).Where(c => beta[c] <= 0).OrderBy(c => c).Append(Array.IndexOf(beta, 0.1f)).Take(10), leastActive);
        mask.PruneExactly(leastActive);
        Assert.Equal(10, mask.PrunedCount);
        for (var c = 0; c < 64; c++)
        {
            var column = mask.Weight.select(1, c);
            if (leastActive.Contains(c)) Assert.Equal(0f, column.abs().sum().item<float>());
            else Assert.True(column.eq(before.select(1, c)).all().item<bool>());
        }

        // A new level starts from the unpruned weight; Apply re-zeroes after a change.
        mask.PruneExactly(leastActive.Take(2));
        Assert.Equal(2, mask.PrunedCount);
        Assert.True(mask.Weight.select(1, leastActive[5]).eq(before.select(1, leastActive[5])).all().item<bool>());
        using (no_grad()) mask.Weight.add_(1f);
        mask.Apply();
        Assert.Equal(0f, mask.Weight.select(1, leastActive[0]).abs().sum().item<float>());
        Assert.NotEqual(0f, mask.Weight.select(1, leastActive[5]).abs().sum().item<float>());
    }

    // ---- NAD ----

    [Fact]
    public void Nad_attention_map_is_the_normalised_channel_sum_of_squares_and_its_loss_vanishes_for_equal_maps()
    {
        // 1 sample, 2 channels, 2×2: squares summed over channels = [1+4, 0+9; 16+1, 4+0] = [5, 9; 17, 4].
        using var f = tensor(new float[] { 1, 0, -4, 2, /* channel 2 */ 2, 3, 1, 0 }).reshape(1, 2, 2, 2);
        var map = NadDefense.AttentionMap(f, 2.0).data<float>().ToArray();
        var norm = Math.Sqrt(5 * 5 + 9 * 9 + 17 * 17 + 4 * 4) + 1e-6;
        Assert.Equal([5 / norm, 9 / norm, 17 / norm, 4 / norm], map.Select(v => (double)v), new ToleranceComparer(1e-6));

        using var g = f * 3;      // a scaled copy has the same normalised map
        Assert.Equal(0f, NadDefense.AttentionLoss(f, f, 2.0).item<float>());
        Assert.True(NadDefense.AttentionLoss(f, g, 2.0).item<float>() < 1e-10);
        using var h = tensor(new float[] { 1, 0, 0, 0, 0, 0, 0, 0 }).reshape(1, 2, 2, 2);
        // h's map is [1, 0, 0, 0]: MSE = mean of squared differences.
        var expected = new[] { 5 / norm - 1, 9 / norm, 17 / norm, 4 / norm }.Average(d => d * d);
        Assert.Equal(expected, NadDefense.AttentionLoss(f, h, 2.0).item<float>(), 6);
    }

    [Fact]
    public void Nad_refuses_a_torchscript_model_with_a_clear_message()
    {
        using var loaded = data.Load("fmnist-smallcnn-badnets.ts.pt");
        using var clean = data.Clean(5, seed: 0);
        var ex = Assert.Throws<DefenseInputException>(() => DefenseRunner.Run(data.Request(new NadDefense(), loaded.Classifier, clean, withBackdoor: false)));
        Assert.Contains("NAD needs a zoo architecture", ex.Message);
        Assert.Contains("TorchScript", ex.Message);
    }

    [Fact]
    public void Feature_tap_captures_the_named_layers_only_when_asked()
    {
        torch.random.manual_seed(0);
        using var model = ModelZoo.CreateClassifier("smallcnn", 10, InputSpec.Grey28);
        model.Module.eval();
        using var tap = new FeatureTap(model, NadDefense.AttentionLayers["smallcnn"]);
        using var x = rand(3, 1, 28, 28);
        using var plain = model.Forward(x);
        var (logits, features) = tap.Forward(x);
        Assert.True(logits.allclose(plain));
        Assert.Equal([3L, 32, 14, 14], features[0].shape);
        Assert.Equal([3L, 64, 7, 7], features[1].shape);
        foreach (var t in features) t.Dispose();
        logits.Dispose();
        Assert.Throws<InvalidOperationException>(() => new FeatureTap(model, ["nope"]));
    }

    // ---- FT-SAM ----

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Sam_perturbation_has_radius_rho_and_restore_puts_the_weights_back_exactly(bool adaptive)
    {
        using var w1 = new TorchSharp.Modules.Parameter(tensor(new float[] { 0.5f, -2f, 0f }));
        using var w2 = new TorchSharp.Modules.Parameter(tensor(new float[] { 1.5f, 3f }));
        using var original1 = w1.detach().clone();
        using var original2 = w2.detach().clone();
        w1.grad = tensor(new float[] { 1f, 2f, 3f });
        w2.grad = tensor(new float[] { -1f, 0.5f });
        using var sam = new SharpnessAwareStep([w1, w2], rho: 2.0, adaptive);
        var norm = sam.Perturb();

        double[] g = [1, 2, 3, -1, 0.5], w = [0.5, -2, 0, 1.5, 3];
        double[] e = [.. (w1.detach() - original1).data<float>().ToArray().Select(v => (double)v), .. (w2.detach() - original2).data<float>().ToArray().Select(v => (double)v)];
        var expectedNorm = Math.Sqrt(g.Select((gi, i) => Math.Pow((adaptive ? Math.Abs(w[i]) : 1) * gi, 2)).Sum());
        Assert.Equal(expectedNorm, norm, tolerance: 1e-5);
        for (var i = 0; i < e.Length; i++)
        {
            Assert.Equal(2.0 * (adaptive ? w[i] * w[i] : 1) * g[i] / expectedNorm, e[i], tolerance: 1e-5);
        }

        // ‖e‖ = ρ for SAM; ‖e / |w|‖ = ρ for ASAM (over the non-zero weights; e is 0 where w is 0).
        var radius = adaptive
            ? Math.Sqrt(e.Select((ei, i) => w[i] == 0 ? 0 : Math.Pow(ei / Math.Abs(w[i]), 2)).Sum())
            : Math.Sqrt(e.Sum(ei => ei * ei));
        Assert.Equal(2.0, radius, tolerance: 1e-4);

        sam.Restore();
        Assert.True(w1.detach().eq(original1).all().item<bool>());
        Assert.True(w2.detach().eq(original2).all().item<bool>());
        Assert.Throws<InvalidOperationException>(() => { sam.Perturb(); sam.Perturb(); });
    }

    [Fact]
    public void Smoothed_cross_entropy_uses_eps_over_c_minus_1_off_target()
    {
        using var logits = tensor(new float[] { 2f, 0f, -1f, 0.5f, 0.5f, 0.5f }).reshape(2, 3);
        using var labels = tensor(new long[] { 0, 2 });
        var logp = logits.log_softmax(1).data<float>().ToArray();
        double[] t0 = [0.9, 0.05, 0.05], t1 = [0.05, 0.05, 0.9];
        var expected = -(t0.Select((t, k) => t * logp[k]).Sum() + t1.Select((t, k) => t * logp[3 + k]).Sum()) / 2;
        Assert.Equal(expected, FtSamDefense.SmoothedCrossEntropy(logits, labels, 3, 0.1).item<float>(), 5);
    }

    [Fact]
    public void Sam_step_leaves_bn_running_statistics_as_after_the_first_pass()
    {
        torch.random.manual_seed(1);
        using var model = ModelZoo.CreateClassifier("smallcnn", 10, InputSpec.Grey28);
        model.Module.train();
        using var x = rand(8, 1, 28, 28);
        using (no_grad()) model.Forward(x);
        var bn = ModelTopology.Discover(model).BatchNorms[0];
        using var mean = model.Module.named_buffers().Single(b => b.name == "bn1.running_mean").buffer.clone();
        using var stats = RunningStatistics.Take(model.Module);
        using (no_grad()) model.Forward(x * 2);
        Assert.False(model.Module.named_buffers().Single(b => b.name == "bn1.running_mean").buffer.allclose(mean));
        stats.Restore();
        Assert.True(model.Module.named_buffers().Single(b => b.name == "bn1.running_mean").buffer.eq(mean).all().item<bool>());
        Assert.Equal(16, bn.Channels);
    }

    // ---- end to end on the backdoored Fashion-MNIST SmallCnn ----

    private DefenseResult RunOnFixture(IDefense defense, Dictionary<string, object> parameters, int perClass = 100, int seed = 0, bool withBackdoor = true)
    {
        using var loaded = data.Load();
        using var clean = data.Clean(perClass, seed: 1);
        var result = DefenseRunner.Run(data.Request(defense, loaded.Classifier, clean, withBackdoor, seed, parameters));
        output.WriteLine($"{defense.Name}: ACC {result.Before!.Acc:P2} → {result.After!.Acc:P2}, ASR {result.Before.Asr:P2} → {result.After.Asr:P2}, " +
                         $"RA {result.Before.Ra:P2} → {result.After.Ra:P2}, {result.WallTime.TotalSeconds:0.0} s; chosen {result.Chosen.X}: {result.Chosen.Rule}");
        foreach (var p in result.Trajectory) output.WriteLine($"  {p.Phase} {p.X}: val ACC {p.ValAcc:P1} val ASR {p.ValAsr:P1} loss {p.Loss:0.###} {p.Note}");
        foreach (var (k, v) in result.Findings) output.WriteLine($"  {k} = {(v is int[] a ? string.Join(",", a) : v)}");
        Assert.True(result.Before.Asr > 0.9, $"the fixture should be backdoored: ASR {result.Before.Asr:P1}");
        foreach (var (name, value) in parameters) Assert.Equal(value, result.Parameters[name]);
        Assert.Equal(defense.Parameters.Count, result.Parameters.Count);
        return result;
    }

    /// <summary>The chosen epoch is the last epoch with the highest validation ACC, and the model left is that epoch's.</summary>
    private static void AssertBestValidationEpoch(DefenseResult result, string phase)
    {
        var epochs = result.Trajectory.Where(p => p.Phase == phase && p.X >= 1).ToList();
        Assert.NotEmpty(epochs);
        var best = epochs.Where(p => p.ValAcc == epochs.Max(q => q.ValAcc)).Max(p => p.X);
        Assert.Equal(best, (int)result.Findings["chosen_epoch"]);
        Assert.Equal(epochs.Single(p => p.X == best).ValAcc, (double)result.Findings["final_val_acc"]);
    }

    [Fact]
    public void Baseline_defenses_are_listed_with_valid_defaults()
    {
        Assert.Equal(["ft", "fp", "nad", "ft-sam"], DefenseCatalog.All.Select(d => d.Name).Where(n => n is "ft" or "fp" or "nad" or "ft-sam"));
        foreach (var defense in new IDefense[] { new FtDefense(), new FpDefense(), new NadDefense(), new FtSamDefense() })
        {
            var resolved = DefenseParameters.Resolve(defense.Parameters);
            Assert.Equal(defense.Parameters.Count, resolved.Values.Count);
            Assert.Equal(defense.Parameters.Count, defense.Parameters.Select(p => p.Name).Distinct().Count());
            Assert.All(defense.Parameters, p => Assert.False(string.IsNullOrWhiteSpace(p.Help)));
            Assert.Contains("arxiv.org", defense.Paper);
        }
    }

    /// <summary>
    /// At lr 0.01 (the reference) ten epochs leave ASR at ~97% on this model; at lr 0.05 ASR falls to ~78% (measured
    /// 99.5% → 77.6%) while ACC holds (87.1% → 85.2%).
    /// </summary>
    [Fact]
    public void Ft_end_to_end()
    {
        using var result = RunOnFixture(new FtDefense(), new() { ["epochs"] = 10, ["lr"] = 0.05 });
        Assert.True(result.After!.Asr < 0.9, $"ASR {result.Before!.Asr:P1} → {result.After.Asr:P1}");
        Assert.Equal(10, result.Trajectory.Count(p => p.Phase == "fine-tune" && p.X >= 1));
        Assert.All(result.Trajectory, p => Assert.NotNull(p.ValAsr));
        AssertBestValidationEpoch(result, "fine-tune");
        Assert.Equal(result.Chosen.X, (int)result.Findings["chosen_epoch"]);
        Assert.True(result.Before!.Acc - result.After!.Acc < 0.03, $"ACC {result.Before.Acc:P1} → {result.After.Acc:P1}");
    }

    [Fact]
    public void Fp_end_to_end()
    {
        using var result = RunOnFixture(new FpDefense(), new() { ["epochs"] = 3 });
        var sweep = result.Trajectory.Where(p => p.Phase == "prune").ToList();
        Assert.Equal(0, sweep[0].X);
        var bound = 0.1 * sweep[0].ValAcc!.Value;
        var chosen = (int)result.Findings["pruned_channels"];
        Assert.True(sweep.TakeWhile(p => p.X <= chosen).All(p => sweep[0].ValAcc - p.ValAcc <= bound + 1e-9), result.Chosen.Rule);
        if (sweep.FirstOrDefault(p => p.X > chosen) is { } next) Assert.True(sweep[0].ValAcc - next.ValAcc > bound, "the next level breaks the bound");
        // The pruned channels are still zero after fine-tuning.
        var fc = result.Purified.Module.named_parameters().Single(p => p.name == "fc.weight").parameter;
        foreach (var c in (int[])result.Findings["pruned_channel_ids"]) Assert.Equal(0f, fc.select(1, c).abs().sum().item<float>());
        AssertBestValidationEpoch(result, "fine-tune");
        Assert.True(result.Before!.Acc - result.After!.Acc < 0.03, $"ACC {result.Before.Acc:P1} → {result.After.Acc:P1}");
    }

    [Fact]
    public void Nad_end_to_end()
    {
        using var result = RunOnFixture(new NadDefense(), new() { ["te_epochs"] = 5, ["epochs"] = 5 });
        Assert.Contains(result.Trajectory, p => p.Phase == "teacher" && p.X == 5);
        AssertBestValidationEpoch(result, "distil");
        Assert.Equal(new[] { "bn2", "bn3" }, (string[])result.Findings["attention_layers"]);
        Assert.True(result.Before!.Acc - result.After!.Acc < 0.03, $"ACC {result.Before.Acc:P1} → {result.After.Acc:P1}");
    }

    /// <summary>
    /// With the reference's ρ = 2 (ASAM) the perturbed loss is large on this small model: within 5 epochs validation
    /// ASR falls to a few percent, but validation ACC falls too, so the best-validation-ACC epoch is the first one.
    /// Measured on the test sets: ASR 99.5% → 74.7%, ACC 87.1% → 71.5% (plain FT at the same settings: ASR 96.7%).
    /// That ACC cost is a finding about ρ on this model (docs/defenses/baselines-ft.md), asserted as a bound, not hidden.
    /// </summary>
    [Fact]
    public void Ft_sam_end_to_end()
    {
        using var result = RunOnFixture(new FtSamDefense(), new() { ["epochs"] = 5 });
        AssertBestValidationEpoch(result, "fine-tune");
        Assert.Equal("ASAM", result.Findings["optimizer"]);
        Assert.True(result.After!.Asr < 0.85, $"ASR {result.Before!.Asr:P1} → {result.After.Asr:P1}");
        Assert.True(result.After.Acc > 0.65, $"ACC {result.Before.Acc:P1} → {result.After.Acc:P1}");
        Assert.Contains(result.Trajectory, p => p.Phase == "fine-tune" && p.ValAsr < 0.1);
    }

    private sealed class ToleranceComparer(double tolerance) : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) <= tolerance;
        public int GetHashCode(double obj) => 0;
    }
}
