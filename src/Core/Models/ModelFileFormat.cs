namespace WebDefense.Core.Models;

/// <summary>The kinds of model file the service accepts (see <c>ModelFormatDetector</c>).</summary>
public enum ModelFileFormat
{
    /// <summary>A <c>torch.save</c> zip archive (<c>*/data.pkl</c>, no <c>code/</c>) holding a state dict or a checkpoint wrapping one.</summary>
    PyTorchStateDict,

    /// <summary>
    /// A pre-1.6 <c>torch.save</c> pickle (<c>_use_new_zipfile_serialization=False</c>) holding a state dict or a checkpoint
    /// wrapping one; read by the same restricted unpickler. Purified models are written back as <see cref="PyTorchStateDict"/>.
    /// </summary>
    PyTorchLegacy,

    /// <summary>A huggingface safetensors file.</summary>
    Safetensors,

    /// <summary>A TorchScript archive (<c>torch.jit.save</c>): a zip with <c>code/</c> or <c>constants.pkl</c>.</summary>
    TorchScript,

    /// <summary>TorchSharp's own <c>Module.save</c> format (<c>.dat</c>).</summary>
    TorchSharp,
}
