using TorchSharp;
using WebDefense.Core.Data;
using WebDefense.Core.Models;
using WebDefense.Core.Runtime;
using static TorchSharp.torch;

namespace WebDefense.Core.Defenses.Blocks;

/// <summary>
/// AdvrBD's perturbation-consistency score (paper Eq. 3, Algorithm 1): for a sample x, draw a random patch mask m, find
/// an adversarial perturbation δ inside it (‖δ‖∞ ≤ ε on pixels in [0,1]), and score KL(f(x) ‖ f(x + m⊙δ)) between the
/// model's predicted distributions. Poisoned samples, held by their trigger, change little (low score); clean ones more.
/// δ maximises that same KL by projected gradient ascent (PGD): a uniform random start in [−ε, ε] (the KL's gradient is
/// zero at δ = 0), <see cref="Options.Steps"/> signed-gradient steps of size 2.5·ε/steps, each projected back onto the
/// ε-box and the mask; x + m⊙δ is clipped to [0,1]. The model runs in eval mode; its weights are not touched.
/// </summary>
public static class AdversarialConsistency
{
    /// <param name="PatchRadius">The mask is a (2r+1)×(2r+1) square (<see cref="PatchMask"/>).</param>
    /// <param name="Epsilon">L∞ budget of δ on pixels scaled to [0,1].</param>
    /// <param name="Steps">PGD steps (0: the random start only).</param>
    public sealed record Options(int PatchRadius, double Epsilon, int Steps, int BatchSize = 256)
    {
        /// <summary>Madry et al.'s step size, 2.5·ε/steps: enough to cross the ε-box within the steps.</summary>
        public double StepSize => Steps == 0 ? 0 : 2.5 * Epsilon / Steps;
    }

    /// <summary>Per-sample KL(p ‖ q) of the distributions given by two batches of logits (N×K → N).</summary>
    public static Tensor KlDivergence(Tensor logitsP, Tensor logitsQ)
    {
        using var scope = NewDisposeScope();
        var logP = nn.functional.log_softmax(logitsP, 1);
        var logQ = nn.functional.log_softmax(logitsQ, 1);
        return logP.exp().mul(logP.sub(logQ)).sum(1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// x + m⊙δ for a batch of [0,1] float pixels (N×C×H×W) and masks (N×1×H×W), δ found by PGD on the KL from the
    /// model's prediction on x. Returns new pixels in [0,1] that differ from x only inside the mask, by at most ε.
    /// </summary>
    public static Tensor Perturb(Classifier model, Tensor pixels, Tensor mask, Options options, Random random)
    {
        using var scope = NewDisposeScope();
        using var grad = enable_grad();
        var eps = options.Epsilon;
        Tensor logitsClean;
        using (no_grad())
        {
            logitsClean = model.Forward(model.Input.NormalizeUnit(pixels));
        }

        var start = new float[pixels.numel()];
        for (var i = 0; i < start.Length; i++) start[i] = (float)((2 * random.NextDouble() - 1) * eps);
        var delta = tensor(start, pixels.shape).to(pixels.device).mul(mask);
        for (var step = 0; step < options.Steps; step++)
        {
            var leaf = delta.detach().requires_grad_(true);
            var adversarial = pixels.add(leaf).clamp(0, 1);
            var divergence = KlDivergence(logitsClean, model.Forward(model.Input.NormalizeUnit(adversarial))).sum();
            var gradient = torch.autograd.grad([divergence], [leaf])[0];
            delta = leaf.detach().add(gradient.sign().mul(options.StepSize)).clamp(-eps, eps).mul(mask);
        }

        return pixels.add(delta.detach()).clamp(0, 1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The consistency score (KL, ≥ 0) of each of <paramref name="rows"/> of <paramref name="data"/>, in that order. One
    /// fresh mask and random start per sample, drawn from <paramref name="random"/>; each batch in its own dispose scope.
    /// </summary>
    public static double[] Score(Classifier model, ImageDataset data, IReadOnlyList<int> rows, Options options, Random random,
        CancellationToken cancellation, Action<double>? progress = null)
    {
        model.Input.EnsureMatches(data);
        var scores = new double[rows.Count];
        var wasTraining = model.Module.training;
        model.Module.eval();
        try
        {
            for (var start = 0; start < rows.Count; start += options.BatchSize)
            {
                cancellation.ThrowIfCancellationRequested();
                using var quiet = GcQuietRegion.Enter();
                using var scope = NewDisposeScope();
                var length = Math.Min(options.BatchSize, rows.Count - start);
                var index = tensor(rows.Skip(start).Take(length).Select(r => (long)r).ToArray());
                var pixels = model.OnDevice(data.Images.index_select(0, index)).to_type(ScalarType.Float32).div(255f);
                var mask = model.OnDevice(PatchMask.Random(length, data.Height, data.Width, options.PatchRadius, random));
                var perturbed = Perturb(model, pixels, mask, options, random);
                using var noGrad = no_grad();
                var kl = KlDivergence(model.Forward(model.Input.NormalizeUnit(pixels)), model.Forward(model.Input.NormalizeUnit(perturbed)));
                var values = kl.clamp_min(0).to_type(ScalarType.Float64).cpu().data<double>().ToArray();
                values.CopyTo(scores, start);
                progress?.Invoke((double)(start + length) / rows.Count);
            }
        }
        finally
        {
            model.Module.train(wasTraining);
        }

        return scores;
    }
}
