using TorchSharp;
using static TorchSharp.torch;

namespace WebDefense.Core.Defenses.Blocks;

/// <summary>
/// Pruned conv filters, as Grad-Prune's authors prune them: filter k of a conv has its weights and its own bias
/// zeroed, and the γ of its own BN (the BN that normalises that conv's output, found on native and TorchScript
/// models alike by <see cref="ModelTopology"/>). The channel then carries the BN's β, a constant. The authors zero
/// index k of whatever tensor follows the conv weight in parameter order, which is that γ for most convs but
/// another conv's filter or a class row of the classifier for some (reference-algorithms §11); we take the BN the
/// conv's output really flows into (docs/defenses/grad-prune.md). <see cref="Apply"/> re-zeroes everything pruned
/// so far; call it after each optimizer step to keep pruned filters pruned (a persistent mask).
/// </summary>
public sealed class FilterMask(ModelTopology topology)
{
    private readonly List<(ConvLayer Conv, int Filter)> _pruned = [];

    public int Count => _pruned.Count;
    public IReadOnlyList<(ConvLayer Conv, int Filter)> Pruned => _pruned;

    public bool IsPruned(ConvLayer conv, int filter) => _pruned.Contains((conv, filter));

    public void Prune(ConvLayer conv, int filter)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(filter);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(filter, conv.Filters);
        if (!IsPruned(conv, filter))
        {
            _pruned.Add((conv, filter));
        }

        Zero(conv, filter);
    }

    public void Apply()
    {
        foreach (var (conv, filter) in _pruned)
        {
            Zero(conv, filter);
        }
    }

    private void Zero(ConvLayer conv, int filter)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        conv.Weight[filter].zero_();
        conv.Bias?[filter].zero_();
        if (topology.BatchNorm(conv.BatchNorm) is { } norm)
        {
            norm.Weight[filter].zero_();
        }
    }
}
