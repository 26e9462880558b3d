using TorchSharp;
using static TorchSharp.torch;

namespace WebDefense.Core.Defenses.Blocks;

/// <summary>
/// ANP's noisy batch norm (reference-algorithms §8) on every BN channel of a model: a mask m ∈ [0,1] (init 1) and
/// multiplicative noise δ, ξ ∈ [−ε, ε] (init 0), applied as γ' = γ ⊙ (m + δ), β' = β ⊙ (1 + ξ) when perturbed and
/// γ' = γ ⊙ m, β' = β when clean. As <see cref="BatchNormMask"/> does, γ' and β' are written into the BN parameters
/// before a forward pass (so TorchScript models work) and the chain rule turns the BN parameters' gradients into
/// those of m, δ and ξ: ∂L/∂m = ∂L/∂δ = ∂L/∂γ' ⊙ γ, ∂L/∂ξ = ∂L/∂β' ⊙ β. The forward value is the same as the
/// functional form's, so the gradients are exact. <see cref="Dispose"/> puts the original γ and β back.
/// </summary>
public sealed class BatchNormPerturbation : IDisposable
{
    private readonly ModelTopology _topology;
    private readonly Tensor[] _gamma, _beta, _mask, _noise, _noiseBias, _velocity, _maskGrad;

    public BatchNormPerturbation(ModelTopology topology, double epsilon)
    {
        _topology = topology;
        Epsilon = epsilon;
        using var noGrad = no_grad();
        Tensor Keep(Tensor t) => t.DetachFromDisposeScope();
        _gamma = topology.BatchNorms.Select(b => Keep(b.Weight.detach().clone())).ToArray();
        _beta = topology.BatchNorms.Select(b => Keep(b.Bias.detach().clone())).ToArray();
        _mask = _gamma.Select(g => Keep(ones_like(g))).ToArray();
        _noise = _gamma.Select(g => Keep(zeros_like(g))).ToArray();
        _noiseBias = _gamma.Select(g => Keep(zeros_like(g))).ToArray();
        _velocity = _gamma.Select(g => Keep(zeros_like(g))).ToArray();
        _maskGrad = _gamma.Select(g => Keep(zeros_like(g))).ToArray();
    }

    public double Epsilon { get; }
    public IReadOnlyList<Tensor> Masks => _mask;
    public IReadOnlyList<Tensor> Noise => _noise;
    public IReadOnlyList<Tensor> NoiseBias => _noiseBias;
    internal IReadOnlyList<Tensor> MaskGradients => _maskGrad;

    /// <summary>δ, ξ ~ U[−ε, ε], drawn from <paramref name="random"/> (same seed → same noise).</summary>
    public void Reset(Random random)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        foreach (var t in _noise.Concat(_noiseBias))
        {
            var values = new float[t.numel()];
            for (var i = 0; i < values.Length; i++) values[i] = (float)((2 * random.NextDouble() - 1) * Epsilon);
            t.copy_(tensor(values));
        }
    }

    /// <summary>Writes the perturbed (γ ⊙ (m + δ), β ⊙ (1 + ξ)) or clean (γ ⊙ m, β) affine parameters into every BN.</summary>
    public void Write(bool perturbed)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        for (var i = 0; i < _gamma.Length; i++)
        {
            var norm = _topology.BatchNorms[i];
            norm.Weight.copy_(_gamma[i] * (perturbed ? _mask[i] + _noise[i] : _mask[i]));
            norm.Bias.copy_(perturbed ? _beta[i] * (1 + _noiseBias[i]) : _beta[i]);
        }
    }

    /// <summary>
    /// One ascent step of the noise on the loss whose gradient the BN parameters hold (after a perturbed forward and
    /// backward of CE): δ += step·sign(∂CE/∂δ), ξ += step·sign(∂CE/∂ξ), then projected back onto [−ε, ε].
    /// </summary>
    public void NoiseStep(double step)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        for (var i = 0; i < _gamma.Length; i++)
        {
            var norm = _topology.BatchNorms[i];
            if (norm.Weight.grad is { } gw) _noise[i].add_((gw * _gamma[i]).sign() * step).clamp_(-Epsilon, Epsilon);
            if (norm.Bias.grad is { } gb) _noiseBias[i].add_((gb * _beta[i]).sign() * step).clamp_(-Epsilon, Epsilon);
        }
    }

    /// <summary>Adds the mask gradient implied by the BN weights' current gradients (call once per backward pass).</summary>
    public void AccumulateMaskGradient()
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        for (var i = 0; i < _gamma.Length; i++)
        {
            if (_topology.BatchNorms[i].Weight.grad is { } gw) _maskGrad[i].add_(gw * _gamma[i]);
        }
    }

    /// <summary>SGD with momentum (PyTorch's rule, no weight decay) on the accumulated mask gradient, then clip to [0,1].</summary>
    public void MaskStep(double learningRate, double momentum)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        for (var i = 0; i < _mask.Length; i++)
        {
            _velocity[i].mul_(momentum).add_(_maskGrad[i]);
            _mask[i].sub_(_velocity[i] * learningRate).clamp_(0, 1);
            _maskGrad[i].zero_();
        }
    }

    /// <summary>Mask values of every BN channel, in topology order: (layer, channel, value).</summary>
    public IReadOnlyList<(BatchNormLayer Layer, int Channel, float Value)> Values()
    {
        var result = new List<(BatchNormLayer, int, float)>();
        for (var i = 0; i < _mask.Length; i++)
        {
            var values = _mask[i].cpu().data<float>().ToArray();
            for (var c = 0; c < values.Length; c++) result.Add((_topology.BatchNorms[i], c, values[c]));
        }

        return result;
    }

    public void Dispose()
    {
        using (no_grad())
        {
            for (var i = 0; i < _gamma.Length; i++)
            {
                _topology.BatchNorms[i].Weight.copy_(_gamma[i]);
                _topology.BatchNorms[i].Bias.copy_(_beta[i]);
            }
        }

        foreach (var t in _gamma.Concat(_beta).Concat(_mask).Concat(_noise).Concat(_noiseBias).Concat(_velocity).Concat(_maskGrad)) t.Dispose();
    }
}
