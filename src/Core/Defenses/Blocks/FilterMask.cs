using TorchSharp;
using static TorchSharp.torch;

namespace WebDefense.Core.Defenses.Blocks;

/// <summary>
/// Pruned conv filters. Pruning filter k of a conv zeroes its weights, its own bias and the γ and β of its
/// own BN (the BN that normalises that conv's output, when there is one), so the channel is exactly zero.
/// <see cref="Apply"/> re-zeroes everything pruned so far; call it after each optimizer step to keep pruned
/// filters pruned (a persistent mask).
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
            norm.Bias[filter].zero_();
        }
    }
}
