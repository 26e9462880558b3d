using TorchSharp;
using static TorchSharp.torch;

namespace WebDefense.Core.Defenses.Blocks;

/// <summary>One conv filter ("neuron") and its weight change Σ|W_after − W_before| over its weights.</summary>
public sealed record NeuronChange(string Conv, int Filter, double Change);

/// <summary>
/// TSBD's neuron weight change (NWC, reference-algorithms §12 stage 1b–1c): the per-weight |ΔW| between an unlearned
/// copy and the original model for every included conv filter, the filters ranked globally by NWC (descending), and
/// zero re-initialisation of the largest-change weights of the top filters. Owns its |ΔW| tensors.
/// </summary>
public sealed class NeuronWeightChange : IDisposable
{
    private readonly Dictionary<string, Tensor> _delta;

    private NeuronWeightChange(Dictionary<string, Tensor> delta, IReadOnlyList<NeuronChange> ranked)
    {
        _delta = delta;
        Ranked = ranked;
    }

    /// <summary>Every included filter, largest NWC first (ties in model order).</summary>
    public IReadOnlyList<NeuronChange> Ranked { get; }

    /// <summary>Convs are matched by name; <paramref name="include"/> picks them (TSBD: every conv except shortcuts).</summary>
    public static NeuronWeightChange Measure(ModelTopology original, ModelTopology changed, Func<ConvLayer, bool> include)
    {
        using var noGrad = no_grad();
        var delta = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var neurons = new List<NeuronChange>();
        foreach (var conv in original.Convs.Where(include))
        {
            var after = changed.Convs.First(c => c.Name == conv.Name);
            var d = (after.Weight.detach() - conv.Weight.detach()).abs().DetachFromDisposeScope();
            delta[conv.Name] = d;
            var sums = d.reshape(d.shape[0], -1).sum(1, type: ScalarType.Float64);
            var values = sums.cpu().data<double>().ToArray();
            sums.Dispose();
            neurons.AddRange(values.Select((v, k) => new NeuronChange(conv.Name, k, v)));
        }

        var ranked = neurons.Select((n, i) => (n, i)).OrderByDescending(x => x.n.Change).ThenBy(x => x.i).Select(x => x.n).ToList();
        return new NeuronWeightChange(delta, ranked);
    }

    /// <summary>
    /// Zeroes, in <paramref name="target"/> (convs matched by name), the largest-|ΔW| weights of the top
    /// <paramref name="neurons"/> filters: ⌈fraction·K⌉ of them, where K is the number of weights of all chosen filters
    /// pooled (the reference's rule), or ⌈fraction·k⌉ in each filter of k weights when <paramref name="pooled"/> is
    /// false. Biases and BN parameters are untouched. Returns the number of weights zeroed.
    /// </summary>
    public int ZeroReinitialize(ModelTopology target, int neurons, double fraction, bool pooled)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var chosen = Ranked.Take(neurons).ToList();
        if (chosen.Count == 0) return 0;
        List<List<NeuronChange>> groups = pooled ? [chosen] : [.. chosen.Select(n => new List<NeuronChange> { n })];
        var zeroed = 0;
        foreach (var group in groups)
        {
            var pool = cat(group.Select(n => _delta[n.Conv][n.Filter].flatten()).ToArray());
            var count = (int)Math.Min(pool.shape[0], Math.Ceiling(fraction * pool.shape[0] - 1e-9));
            if (count == 0) continue;
            var flags = zeros(pool.shape[0], ScalarType.Bool, device: pool.device).index_fill_(0, pool.topk(count).indexes, true);
            long offset = 0;
            foreach (var n in group)
            {
                var weight = target.Convs.First(c => c.Name == n.Conv).Weight[n.Filter];
                var size = weight.numel();
                weight.masked_fill_(flags.narrow(0, offset, size).view(weight.shape), 0);
                offset += size;
            }

            zeroed += count;
        }

        return zeroed;
    }

    public void Dispose()
    {
        foreach (var d in _delta.Values) d.Dispose();
    }
}
