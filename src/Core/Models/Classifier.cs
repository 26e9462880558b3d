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

    private readonly Func<nn.Module>? _factory;

    /// <param name="factory">Creates a fresh module of the same architecture, whose state <see cref="Clone"/> then overwrites: a zoo
    /// constructor, or for TorchScript a load of the archive's bytes in memory (without it, TorchScript is cloned through a temporary file).</param>
    public Classifier(nn.Module module, string architecture, int numClasses, InputSpec input, Func<nn.Module>? factory = null)
    {
        if (module is not nn.IModule<Tensor, Tensor>)
        {
            throw new ArgumentException("the module must map one tensor to one tensor", nameof(module));
        }

        Module = module;
        Device = DeviceOf(module);
        Architecture = architecture;
        NumClasses = numClasses;
        Input = input;
        _factory = factory;
    }

    public nn.Module Module { get; }
    public string Architecture { get; }
    public int NumClasses { get; }
    public InputSpec Input { get; }
    public bool IsTorchScript => Module is jit.ScriptModule;

    /// <summary>Where the parameters and buffers live, and so where batches, labels, masks and counters for this model go.</summary>
    public Device Device { get; private set; }

    /// <summary>Logits for a normalised float batch.</summary>
    public Tensor Forward(Tensor input) => ((nn.IModule<Tensor, Tensor>)Module).call(input);

    /// <summary>uint8 N×C×H×W pixels → the normalised float batch on <see cref="Device"/>.</summary>
    public Tensor Prepare(Tensor pixels) => Input.Normalize(pixels, Device);

    /// <summary>A tensor (labels, indices, an input built on the CPU) on <see cref="Device"/>; the same tensor when it is already there.</summary>
    public Tensor OnDevice(Tensor tensor) => tensor.to(Device);

    /// <summary>
    /// Moves the parameters and buffers to <paramref name="device"/> (no-op when they are there). Do it before anything
    /// holds references to the parameters (topologies, optimisers, masks): a move replaces them.
    /// </summary>
    public Classifier MoveTo(Device device)
    {
        if (device.type != Device.type || device.index != Device.index)
        {
            Module.to(device);
            Device = DeviceOf(Module);
        }

        return this;
    }

    /// <summary>An independent copy: same architecture, parameters, buffers and train/eval mode.</summary>
    public Classifier Clone()
    {
        nn.Module copy;
        if (Module is jit.ScriptModule script && _factory is null)
        {
            // A script module built without its archive at hand: through a temporary file.
            var path = Path.Combine(Path.GetTempPath(), $"webdefense-clone-{Guid.NewGuid():N}.pt");
            try
            {
                TorchScriptModel.Save(script, path);
                copy = TorchScriptModel.Load(path);
            }
            finally
            {
                File.Delete(path);
            }
        }
        else
        {
            copy = (_factory ?? throw new InvalidOperationException($"no factory to copy a '{Architecture}' model")).Invoke();
            using var state = StateDict.FromModule(Module);
            state.CopyInto(copy);
        }

        copy.train(Module.training);
        var clone = new Classifier(copy, Architecture, NumClasses, Input, _factory);
        return clone.MoveTo(Device);
    }

    private static Device DeviceOf(nn.Module module)
    {
        foreach (var (_, parameter) in module.named_parameters())
        {
            return parameter.device;
        }

        foreach (var (_, buffer) in module.named_buffers())
        {
            return buffer.device;
        }

        return CPU;
    }

    public long ParameterCount() => Module.parameters().Sum(p => p.numel());

    public void Dispose() => Module.Dispose();
}
