using TorchSharp;
using static TorchSharp.torch;

namespace WebDefense.Core.Defenses.Blocks;

/// <summary>
/// A learnable mask m ∈ [0,1] on every BN channel, applied as γ' = γ ⊙ m with β unmasked (RNP's
/// MaskBatchNorm2d). Instead of swapping modules, γ' is written into the BN weight before each forward and
/// the weight's gradient is turned into the mask's (∂L/∂m = ∂L/∂γ' ⊙ γ), so it works for any model whose BN
/// parameters are visible, TorchScript included. Optimised with SGD + momentum (PyTorch's update rule) and
/// clipped to [0,1] after every step. <see cref="Dispose"/> puts the original γ back.
/// </summary>
public sealed class BatchNormMask : IDisposable
{
    private readonly ModelTopology _topology;
    private readonly Tensor[] _gamma;
    private readonly Tensor[] _mask;
    private readonly Tensor[] _velocity;

    public BatchNormMask(ModelTopology topology)
    {
        _topology = topology;
        using var noGrad = no_grad();
        _gamma = topology.BatchNorms.Select(b => b.Weight.detach().clone().DetachFromDisposeScope()).ToArray();
        _mask = _gamma.Select(g => ones_like(g).DetachFromDisposeScope()).ToArray();
        _velocity = _gamma.Select(g => zeros_like(g).DetachFromDisposeScope()).ToArray();
    }

    /// <summary>Writes γ ⊙ m into every BN weight.</summary>
    public void Write()
    {
        using var noGrad = no_grad();
        for (var i = 0; i < _mask.Length; i++)
        {
            _topology.BatchNorms[i].Weight.copy_(_gamma[i] * _mask[i]);
        }
    }

    /// <summary>One SGD step on the masks from the BN weights' current gradients, then clip to [0,1].</summary>
    public void Step(double learningRate, double momentum)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        for (var i = 0; i < _mask.Length; i++)
        {
            var grad = _topology.BatchNorms[i].Weight.grad;
            if (grad is null) continue;
            _velocity[i].mul_(momentum).add_(grad * _gamma[i]);
            _mask[i].sub_(_velocity[i] * learningRate).clamp_(0, 1);
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
            for (var i = 0; i < _gamma.Length; i++) _topology.BatchNorms[i].Weight.copy_(_gamma[i]);
        }

        foreach (var t in _gamma.Concat(_mask).Concat(_velocity)) t.Dispose();
    }
}
