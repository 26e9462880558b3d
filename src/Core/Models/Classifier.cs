using TorchSharp;
using WebDefense.Core.Data;
using static TorchSharp.torch;

namespace WebDefense.Core.Models;

/// <summary>
/// An image classifier ready for work: a zoo model (native TorchSharp module with PyTorch's names) or a
/// TorchScript module, with the input it expects and its number of classes. Owns the module.
/// </summary>
public sealed class Classifier : IDisposable
{
    public const string TorchScriptArchitecture = "torchscript";

    public Classifier(nn.Module module, string architecture, int numClasses, InputSpec input)
    {
        if (module is not nn.IModule<Tensor, Tensor>)
        {
            throw new ArgumentException("the module must map one tensor to one tensor", nameof(module));
        }

        Module = module;
        Architecture = architecture;
        NumClasses = numClasses;
        Input = input;
    }

    public nn.Module Module { get; }
    public string Architecture { get; }
    public int NumClasses { get; }
    public InputSpec Input { get; }
    public bool IsTorchScript => Module is jit.ScriptModule;

    /// <summary>Logits for a normalised float batch.</summary>
    public Tensor Forward(Tensor input) => ((nn.IModule<Tensor, Tensor>)Module).call(input);

    public long ParameterCount() => Module.parameters().Sum(p => p.numel());

    public void Dispose() => Module.Dispose();
}
