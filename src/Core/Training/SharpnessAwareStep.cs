using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace WebDefense.Core.Training;

/// <summary>
/// The two halves of a (adaptive) sharpness-aware minimisation step around a base optimizer (Foret et al. 2021;
/// ASAM, Kwon et al. 2021; BackdoorBench <c>utils/defense_utils/sam/sam.py</c>, reference-algorithms §9).
/// <see cref="Perturb"/> moves every parameter that has a gradient g to w + e with
/// e = ρ·g / ‖g‖ (SAM) or e = ρ·w²⊙g / ‖|w|⊙g‖ (ASAM), the norm taken over all parameters jointly (+1e-12),
/// so ‖e‖ = ρ (SAM) or ‖e / |w|‖ = ρ (ASAM). <see cref="Restore"/> puts the saved weights back exactly.
/// Between the two, the caller computes the gradient at w + e; the base optimizer then steps from w with it.
/// </summary>
public sealed class SharpnessAwareStep(IReadOnlyList<Parameter> parameters, double rho, bool adaptive) : IDisposable
{
    private readonly List<(Parameter Parameter, Tensor Saved)> _saved = [];

    public double Rho => rho;
    public bool Adaptive => adaptive;

    /// <summary>Saves w and adds e (from the parameters' current gradients). Returns the joint norm used.</summary>
    public double Perturb()
    {
        if (_saved.Count > 0) throw new InvalidOperationException("the weights are already perturbed; call Restore first");
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var withGrad = parameters.Where(p => p.grad is not null).ToList();
        if (withGrad.Count == 0) return 0;
        var norms = withGrad.Select(p => (adaptive ? p.abs() * p.grad! : p.grad!).norm()).ToArray();
        var norm = stack(norms).norm().item<float>();
        var scale = rho / (norm + 1e-12);
        foreach (var p in withGrad)
        {
            _saved.Add((p, p.detach().clone().DetachFromDisposeScope()));
            var e = adaptive ? p.pow(2) * p.grad! * scale : p.grad! * scale;
            p.add_(e);
        }

        return norm;
    }

    /// <summary>Puts back the weights saved by <see cref="Perturb"/> (a no-op when not perturbed).</summary>
    public void Restore()
    {
        using var noGrad = no_grad();
        foreach (var (p, saved) in _saved)
        {
            p.copy_(saved);
            saved.Dispose();
        }

        _saved.Clear();
    }

    public void Dispose() => Restore();
}

/// <summary>
/// A copy of a model's BN running statistics (every buffer named running_mean, running_var or
/// num_batches_tracked), to undo their update by an extra train-mode forward: SAM's second pass runs with BN
/// momentum 0 in the reference, i.e. leaves the running statistics as they were.
/// </summary>
public sealed class RunningStatistics : IDisposable
{
    private readonly List<(Tensor Buffer, Tensor Saved)> _saved;

    private RunningStatistics(List<(Tensor, Tensor)> saved) => _saved = saved;

    public static RunningStatistics Take(nn.Module module)
    {
        using var noGrad = no_grad();
        var saved = module.named_buffers()
            .Where(b => b.name.EndsWith("running_mean", StringComparison.Ordinal) || b.name.EndsWith("running_var", StringComparison.Ordinal)
                        || b.name.EndsWith("num_batches_tracked", StringComparison.Ordinal))
            .Select(b => (b.buffer, b.buffer.clone().DetachFromDisposeScope()))
            .ToList();
        return new RunningStatistics(saved);
    }

    public void Restore()
    {
        using var noGrad = no_grad();
        foreach (var (buffer, saved) in _saved) buffer.copy_(saved);
    }

    public void Dispose()
    {
        foreach (var (_, saved) in _saved) saved.Dispose();
        _saved.Clear();
    }
}
