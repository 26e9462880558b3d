using TorchSharp;
using static TorchSharp.torch;

namespace WebDefense.Core.Models;

/// <summary>
/// An ordered name → tensor map with PyTorch's parameter names (a <c>state_dict</c>). It owns its tensors:
/// they are detached from any dispose scope on insertion and disposed with the dictionary.
/// </summary>
public sealed class StateDict : IDisposable
{
    private readonly OrderedDictionary<string, Tensor> _tensors = new(StringComparer.Ordinal);

    public int Count => _tensors.Count;
    public IEnumerable<string> Keys => _tensors.Keys;
    public IEnumerable<KeyValuePair<string, Tensor>> Entries => _tensors;
    public Tensor this[string key] => _tensors[key];

    public bool ContainsKey(string key) => _tensors.ContainsKey(key);
    public bool TryGetValue(string key, out Tensor tensor) => _tensors.TryGetValue(key, out tensor!);

    /// <summary>Adds a tensor, taking ownership of it. Duplicate keys are an error.</summary>
    public void Add(string key, Tensor tensor)
    {
        if (!_tensors.TryAdd(key, tensor.DetachFromDisposeScope()))
        {
            throw new ModelFileException($"duplicate tensor name '{key}'");
        }
    }

    /// <summary>Total number of elements of all floating-point tensors (parameters and BN statistics).</summary>
    public long ElementCount => _tensors.Values.Sum(t => t.numel());

    /// <summary>Copies a module's state (parameters and buffers) into a new dictionary on the CPU.</summary>
    public static StateDict FromModule(nn.Module module)
    {
        var result = new StateDict();
        using var noGrad = torch.no_grad();
        foreach (var (name, tensor) in module.state_dict())
        {
            result.Add(name, tensor.detach().cpu().clone());
        }

        return result;
    }

    /// <summary>
    /// Copies these tensors into the module's parameters and buffers of the same names (no_grad, in place).
    /// Every key of the module must be present with the same shape.
    /// </summary>
    public void CopyInto(nn.Module module)
    {
        using var noGrad = torch.no_grad();
        foreach (var (name, target) in module.state_dict())
        {
            if (!_tensors.TryGetValue(name, out var source))
            {
                throw new ModelFileException($"state has no tensor named '{name}'");
            }

            if (!source.shape.SequenceEqual(target.shape))
            {
                throw new ModelFileException(
                    $"'{name}' has shape [{string.Join(',', source.shape)}] but the model expects [{string.Join(',', target.shape)}]");
            }

            target.copy_(source);
        }
    }

    public void Dispose()
    {
        foreach (var t in _tensors.Values)
        {
            t.Dispose();
        }

        _tensors.Clear();
    }
}
