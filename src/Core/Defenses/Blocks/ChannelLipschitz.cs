using TorchSharp;
using WebDefense.Core.Models;
using static TorchSharp.torch;

namespace WebDefense.Core.Defenses.Blocks;

/// <summary>A conv and the BN that scales its output channels, with the BN's running variance.</summary>
public sealed record ConvNormPair(ConvLayer Conv, BatchNormLayer Norm, Tensor RunningVar);

/// <summary>
/// CLP's upper bound of the channel Lipschitz constant (UCLC, Zheng et al. ECCV 2022; reference-algorithms §7):
/// for output channel k of a conv followed by a BN, UCLC_k = σ_max(W_k) · |γ_k| / sqrt(var_k + eps), where W_k is
/// the channel's kernel reshaped to C_in × (kh·kw) and σ_max its largest singular value.
/// </summary>
public static class ChannelLipschitz
{
    /// <summary>PyTorch's BatchNorm2d default eps (the reference divides by sqrt(var) without it).</summary>
    public const double Epsilon = 1e-5;

    public static float[] UpperBounds(Tensor convWeight, Tensor gamma, Tensor runningVar, double epsilon = Epsilon)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var scale = (gamma.detach() / (runningVar.detach() + epsilon).sqrt()).abs();
        var w = convWeight.detach() * scale.view(-1, 1, 1, 1);
        var singular = linalg.svdvals(w.reshape(w.shape[0], w.shape[1], -1).to_type(ScalarType.Float64));
        return singular.amax([1]).to_type(ScalarType.Float32).cpu().data<float>().ToArray();
    }

    /// <summary>
    /// Channels with UCLC_k &gt; mean + u·std of their layer (std unbiased, as torch.std); a layer of one channel
    /// prunes nothing.
    /// </summary>
    public static IEnumerable<int> Outliers(float[] bounds, double u)
    {
        if (bounds.Length < 2) yield break;
        var mean = bounds.Average(b => (double)b);
        var std = Math.Sqrt(bounds.Sum(b => (b - mean) * (b - mean)) / (bounds.Length - 1));
        for (var k = 0; k < bounds.Length; k++)
        {
            if (bounds[k] > mean + u * std) yield return k;
        }
    }

    /// <summary>
    /// Conv→BN pairs. <c>traced</c>: a BN is paired with the conv whose output it normalises directly (found by
    /// <see cref="ModelTopology"/> from a forward pass), so BNs fed by a residual sum are left out. <c>module-order</c>
    /// (the reference): each BN with the most recent conv before it in parameter order, when their channel counts
    /// match. TorchScript models cannot be traced and always use module order; <paramref name="used"/> says which.
    /// </summary>
    public static IReadOnlyList<ConvNormPair> Pairs(Classifier model, ModelTopology topology, string pairing, out string used)
    {
        var variances = model.Module.named_buffers().ToDictionary(b => b.name, b => b.buffer, StringComparer.Ordinal);
        Tensor Var(BatchNormLayer norm) => variances[norm.Name.Length == 0 ? "running_var" : norm.Name + ".running_var"];
        used = pairing == "traced" && !model.IsTorchScript ? "traced" : "module-order";
        if (used == "traced")
        {
            return topology.Convs.Where(c => topology.BatchNorm(c.BatchNorm) is not null)
                .Select(c => new ConvNormPair(c, topology.BatchNorm(c.BatchNorm)!, Var(topology.BatchNorm(c.BatchNorm)!))).ToList();
        }

        var position = model.Module.named_parameters().Select((p, i) => (p.name, i)).ToDictionary(x => x.name, x => x.i, StringComparer.Ordinal);
        int Position(string prefix) => position[prefix.Length == 0 ? "weight" : prefix + ".weight"];
        var pairs = new List<ConvNormPair>();
        foreach (var norm in topology.BatchNorms)
        {
            var conv = topology.Convs.Where(c => Position(c.Name) < Position(norm.Name)).MaxBy(c => Position(c.Name));
            if (conv is not null && conv.Filters == norm.Channels) pairs.Add(new ConvNormPair(conv, norm, Var(norm)));
        }

        return pairs;
    }
}
