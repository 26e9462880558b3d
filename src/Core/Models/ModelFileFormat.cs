namespace WebDefense.Core.Models;

/// <summary>The kinds of model file the service accepts (see <c>ModelFormatDetector</c>).</summary>
public enum ModelFileFormat
{
    /// <summary>A <c>torch.save</c> zip archive (<c>*/data.pkl</c>, no <c>code/</c>) holding a state dict or a checkpoint wrapping one.</summary>
    PyTorchStateDict,

    /// <summary>A huggingface safetensors file.</summary>
    Safetensors,

    /// <summary>A TorchScript archive (<c>torch.jit.save</c>): a zip with <c>code/</c> or <c>constants.pkl</c>.</summary>
    TorchScript,

    /// <summary>TorchSharp's own <c>Module.save</c> format (<c>.dat</c>).</summary>
    TorchSharp,
}
