using TorchSharp;
using static TorchSharp.torch;

namespace WebDefense.Core.Models.Zoo;

/// <summary>
/// Base of the zoo models. TorchSharp's default <c>state_dict</c> lists all parameters first and then all
/// buffers; this one lists them in PyTorch's order (module by module, pre-order: each module's own
/// parameters, then its own buffers), so keys, shapes and order equal <c>model.state_dict()</c> in Python.
/// </summary>
public abstract class ZooModule(string name) : nn.Module<Tensor, Tensor>(name)
{
    public override Dictionary<string, Tensor> state_dict(Dictionary<string, Tensor>? destination = null, string? prefix = null)
    {
        destination ??= new Dictionary<string, Tensor>();
        foreach (var (key, tensor) in PyTorchOrder(this))
        {
            destination.TryAdd(prefix is null ? key : prefix + "." + key, tensor);
        }

        return destination;
    }

    /// <summary>PyTorch's state_dict order for any module tree (depth-first over named_children, registration order).</summary>
    public static IEnumerable<(string Key, Tensor Tensor)> PyTorchOrder(nn.Module root) => Visit(root, "");

    private static IEnumerable<(string Key, Tensor Tensor)> Visit(nn.Module module, string prefix)
    {
        foreach (var (n, t) in module.named_parameters(recurse: false))
        {
            yield return (prefix + n, t);
        }

        foreach (var (n, t) in module.named_buffers(recurse: false))
        {
            yield return (prefix + n, t);
        }

        foreach (var (n, child) in module.named_children())
        {
            foreach (var entry in Visit(child, prefix + n + "."))
            {
                yield return entry;
            }
        }
    }
}
