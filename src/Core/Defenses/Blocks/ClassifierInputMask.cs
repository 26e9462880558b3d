using TorchSharp;
using TorchSharp.Modules;
using WebDefense.Core.Data;
using WebDefense.Core.Models;
using WebDefense.Core.Runtime;
using static TorchSharp.torch;

namespace WebDefense.Core.Defenses.Blocks;

/// <summary>
/// The input features of the final linear layer (logits = W·f + b), which for the zoo's CNNs except vgg19_bn are
/// the average-pooled channels of the last conv stage. Pruning feature c zeroes column c of W (Fine-Pruning as
/// BackdoorBench does it, reference-algorithms §5 and §15); <see cref="Apply"/> re-zeroes the pruned columns after
/// an optimizer step. The final layer is the last 2-D parameter of shape (classes × features), so it works for
/// TorchScript models too. Owns a copy of the unpruned weight.
/// </summary>
public sealed class ClassifierInputMask : IDisposable
{
    private readonly Tensor _original;
    private readonly Tensor _mask;

    private ClassifierInputMask(string name, Parameter weight)
    {
        Name = name;
        Weight = weight;
        using var noGrad = no_grad();
        _original = weight.detach().clone().DetachFromDisposeScope();
        _mask = ones(1, weight.shape[1], device: weight.device).DetachFromDisposeScope();
    }

    public string Name { get; }
    public Parameter Weight { get; }
    public int Features => (int)Weight.shape[1];
    public int PrunedCount { get; private set; }

    public static ClassifierInputMask Discover(Classifier model)
    {
        var (name, weight) = model.Module.named_parameters().LastOrDefault(p => p.parameter.dim() == 2);
        if (weight is null || weight.shape[0] != model.NumClasses)
        {
            throw new InvalidOperationException($"the model's last 2-D parameter is not a final linear layer with {model.NumClasses} outputs");
        }

        return new ClassifierInputMask(name, weight);
    }

    /// <summary>
    /// Mean of every input feature of the final layer over <paramref name="data"/> (eval mode, no augmentation).
    /// No hooks are needed: ∂(Σ logits)/∂W[k, c] = Σ_n f[n, c] for every row k, so the gradient of the summed
    /// logits with respect to W (the only parameter left requiring grad) is the feature sum. Rows that differ
    /// mean the logits are not W·f + b, and the model is refused.
    /// </summary>
    public double[] MeanActivations(Classifier model, ImageDataset data, int batchSize)
    {
        var parameters = model.Module.parameters().ToList();
        var flags = parameters.Select(p => p.requires_grad).ToList();
        var wasTraining = model.Module.training;
        try
        {
            foreach (var p in parameters) p.requires_grad = false;
            Weight.requires_grad = true;
            model.Module.eval();
            model.Module.zero_grad();
            for (var start = 0; start < data.Count; start += batchSize)
            {
                using var quiet = GcQuietRegion.Enter();
                using var scope = NewDisposeScope();
                var length = Math.Min(batchSize, data.Count - start);
                model.Forward(model.Prepare(data.Images.narrow(0, start, length))).sum().backward();
            }

            using var noGrad = no_grad();
            using var outer = NewDisposeScope();
            var sums = Weight.grad ?? throw new InvalidOperationException("the final layer got no gradient");
            var spread = (sums - sums[0].unsqueeze(0)).abs().max().item<float>();
            if (spread > 1e-3 * (1 + sums.abs().max().item<float>()))
            {
                throw new InvalidOperationException($"the logits are not a linear function of the inputs of '{Name}'; Fine-Pruning needs a final linear layer");
            }

            return (sums[0] / data.Count).to_type(ScalarType.Float64).cpu().data<double>().ToArray();
        }
        finally
        {
            model.Module.zero_grad();
            for (var i = 0; i < parameters.Count; i++) parameters[i].requires_grad = flags[i];
            model.Module.train(wasTraining);
        }
    }

    /// <summary>Restores the unpruned weight, then zeroes the columns of the given features.</summary>
    public void PruneExactly(IEnumerable<int> features)
    {
        var keep = Enumerable.Repeat(1f, Features).ToArray();
        foreach (var c in features) keep[c] = 0f;
        PrunedCount = keep.Count(k => k == 0f);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        _mask.copy_(tensor(keep).unsqueeze(0));
        Weight.copy_(_original * _mask);
    }

    /// <summary>Re-zeroes the pruned columns (after an optimizer step).</summary>
    public void Apply()
    {
        using var noGrad = no_grad();
        Weight.mul_(_mask);
    }

    public void Dispose()
    {
        _original.Dispose();
        _mask.Dispose();
    }
}
