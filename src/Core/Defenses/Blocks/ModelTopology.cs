using TorchSharp;
using TorchSharp.Modules;
using WebDefense.Core.Models;
using static TorchSharp.torch;

namespace WebDefense.Core.Defenses.Blocks;

/// <summary>A convolution: its weight (out × in × kh × kw), optional bias, and the BN that normalises its output.</summary>
public sealed record ConvLayer(string Name, Parameter Weight, Parameter? Bias, string? BatchNorm)
{
    public int Filters => (int)Weight.shape[0];
}

/// <summary>A batch-norm layer found by its parameters and buffers.</summary>
public sealed record BatchNormLayer(string Name, Parameter Weight, Parameter Bias)
{
    public int Channels => (int)Weight.shape[0];
}

/// <summary>
/// The prunable structure of a classifier, found from parameter names so it works for zoo models and
/// TorchScript alike: every 4-D weight is a conv; every prefix with weight, bias, running_mean and running_var
/// is a BN. Which BN normalises which conv's output (the "own BN" of a filter) is found by watching one
/// forward pass of native modules with hooks; TorchScript modules have no hooks, so there it is found by probing
/// the graph (<see cref="ProbeConvToBatchNorm"/>). Parameters are listed in the model's <c>named_parameters()</c> order.
/// </summary>
public sealed class ModelTopology
{
    private ModelTopology(IReadOnlyList<ConvLayer> convs, IReadOnlyList<BatchNormLayer> norms)
    {
        Convs = convs;
        BatchNorms = norms;
    }

    public IReadOnlyList<ConvLayer> Convs { get; }
    public IReadOnlyList<BatchNormLayer> BatchNorms { get; }
    public int TotalFilters => Convs.Sum(c => c.Filters);
    public int TotalBatchNormChannels => BatchNorms.Sum(b => b.Channels);

    public BatchNormLayer? BatchNorm(string? name) => name is null ? null : BatchNorms.FirstOrDefault(b => b.Name == name);

    public static ModelTopology Discover(Classifier model)
    {
        var parameters = model.Module.named_parameters().ToList();
        var byName = parameters.ToDictionary(p => p.name, p => p.parameter, StringComparer.Ordinal);
        var buffers = model.Module.named_buffers().Select(b => b.name).ToHashSet(StringComparer.Ordinal);
        var pairs = model.IsTorchScript ? ProbeConvToBatchNorm(model, parameters, buffers) : ConvToBatchNorm(model);

        var convs = new List<ConvLayer>();
        var norms = new List<BatchNormLayer>();
        foreach (var (name, parameter) in parameters)
        {
            if (!name.EndsWith(".weight", StringComparison.Ordinal) && name != "weight")
            {
                continue;
            }

            var prefix = name.Length > 7 ? name[..^7] : string.Empty;
            byName.TryGetValue(Join(prefix, "bias"), out var bias);
            if (parameter.dim() == 4)
            {
                convs.Add(new ConvLayer(prefix, parameter, bias, pairs.GetValueOrDefault(prefix)));
            }
            else if (parameter.dim() == 1 && bias is not null && buffers.Contains(Join(prefix, "running_mean")) && buffers.Contains(Join(prefix, "running_var")))
            {
                norms.Add(new BatchNormLayer(prefix, parameter, bias));
            }
        }

        return new ModelTopology(convs, norms);
    }

    private static string Join(string prefix, string leaf) => prefix.Length == 0 ? leaf : prefix + "." + leaf;

    /// <summary>
    /// Conv name → own BN for a TorchScript module, whose layers take no hooks. For each conv in turn: every BN's
    /// running mean and variance are set to 1, the conv's weights (and bias) to 0, and one training-mode forward pass
    /// runs on a small random batch. The conv's output is then exactly zero, so the BN that takes that output as its
    /// input sees batch mean 0 and variance 0 on every channel and its running mean and variance both become 1 − m
    /// (m its momentum): equal, and below 1. A BN further on sees a mix with other values (a shortcut, padding
    /// borders, a bias) and does not. Should two BNs qualify (a 1×1 conv on a constant input), the first one after
    /// the conv in parameter order is taken. The model's parameters and buffers are restored afterwards.
    /// </summary>
    private static Dictionary<string, string> ProbeConvToBatchNorm(Classifier model, List<(string name, Parameter parameter)> parameters, HashSet<string> bufferNames)
    {
        var pairs = new Dictionary<string, string>(StringComparer.Ordinal);
        var buffers = model.Module.named_buffers().ToDictionary(b => b.name, b => b.buffer, StringComparer.Ordinal);
        var byName = parameters.ToDictionary(p => p.name, p => p.parameter, StringComparer.Ordinal);
        var order = parameters.Select((p, i) => (p.name, i)).ToDictionary(x => x.name, x => x.i, StringComparer.Ordinal);
        var norms = parameters
            .Where(p => p.parameter.dim() == 1 && p.name.EndsWith(".weight", StringComparison.Ordinal))
            .Select(p => p.name[..^7])
            .Where(prefix => bufferNames.Contains(prefix + ".running_mean") && bufferNames.Contains(prefix + ".running_var") && byName.ContainsKey(prefix + ".bias"))
            .ToList();
        var convs = parameters.Where(p => p.parameter.dim() == 4).ToList();
        if (norms.Count == 0 || convs.Count == 0) return pairs;

        using var saved = StateDict.FromModule(model.Module);
        var wasTraining = model.Module.training;
        try
        {
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            var generator = new Generator(0);
            var input = model.OnDevice(rand(4, model.Input.Channels, model.Input.Height, model.Input.Width, generator: generator));
            foreach (var (name, weight) in convs)
            {
                saved.CopyInto(model.Module);
                foreach (var norm in norms)
                {
                    buffers[norm + ".running_mean"].fill_(1);
                    buffers[norm + ".running_var"].fill_(1);
                }

                var prefix = name[..^7];
                weight.zero_();
                if (byName.TryGetValue(prefix + ".bias", out var bias)) bias.zero_();
                model.Module.train();
                model.Forward(input);
                var own = norms
                    .Where(n => buffers[n + ".running_mean"].shape[0] == weight.shape[0])
                    .Where(n =>
                    {
                        var mean = buffers[n + ".running_mean"];
                        return mean.eq(buffers[n + ".running_var"]).all().item<bool>() && mean.lt(1).all().item<bool>();
                    })
                    .OrderBy(n => order[n + ".weight"] > order[name] ? 0 : 1).ThenBy(n => order[n + ".weight"])
                    .FirstOrDefault();
                if (own is not null) pairs[prefix] = own;
            }
        }
        finally
        {
            saved.CopyInto(model.Module);
            model.Module.train(wasTraining);
        }

        return pairs;
    }

    /// <summary>Conv name → name of the BN whose input is exactly that conv's output, from one traced forward pass.</summary>
    private static Dictionary<string, string> ConvToBatchNorm(Classifier model)
    {
        // Keyed by the tensor object, not its native handle: a conv output freed inside a block (a pre-activation
        // block adds it to the shortcut) can have its handle reused by a later tensor, which then looked like that
        // conv's output to the next BN (seen once under a parallel test load: layer2.0.conv2 → layer3.0.bn1).
        var convOutputs = new Dictionary<Tensor, string>(ReferenceEqualityComparer.Instance);
        var pairs = new Dictionary<string, string>(StringComparer.Ordinal);
        var removers = new List<Action>();
        foreach (var (name, module) in model.Module.named_modules())
        {
            if (module is Conv2d conv)
            {
                var remover = conv.register_forward_hook((_, _, output) =>
                {
                    convOutputs[output] = name;
                    return output;
                });
                removers.Add(remover.remove);
            }
            else if (module is BatchNorm2d norm)
            {
                var remover = norm.register_forward_pre_hook((_, input) =>
                {
                    if (convOutputs.TryGetValue(input, out var convName)) pairs.TryAdd(convName, name);
                    return input;
                });
                removers.Add(remover.remove);
            }
        }

        var wasTraining = model.Module.training;
        try
        {
            model.Module.eval();
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var input = zeros(2, model.Input.Channels, model.Input.Height, model.Input.Width, device: model.Device);
            model.Forward(input);
        }
        finally
        {
            removers.ForEach(remove => remove());
            model.Module.train(wasTraining);
        }

        return pairs;
    }
}
