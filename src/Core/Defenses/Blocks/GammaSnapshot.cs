using TorchSharp;
using static TorchSharp.torch;

namespace WebDefense.Core.Defenses.Blocks;

/// <summary>A copy of every BN γ of a model, to restore the unpruned state between pruning levels.</summary>
public sealed class GammaSnapshot : IDisposable
{
    private readonly ModelTopology _topology;
    private readonly Tensor[] _gammas;

    private GammaSnapshot(ModelTopology topology, Tensor[] gammas)
    {
        _topology = topology;
        _gammas = gammas;
    }

    public static GammaSnapshot Take(ModelTopology topology)
    {
        using var noGrad = no_grad();
        return new GammaSnapshot(topology, topology.BatchNorms.Select(b => b.Weight.detach().clone().DetachFromDisposeScope()).ToArray());
    }

    public void Restore()
    {
        using var noGrad = no_grad();
        for (var i = 0; i < _gammas.Length; i++) _topology.BatchNorms[i].Weight.copy_(_gammas[i]);
    }

    public void Dispose()
    {
        foreach (var gamma in _gammas) gamma.Dispose();
    }
}
