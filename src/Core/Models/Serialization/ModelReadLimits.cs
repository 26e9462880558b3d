namespace WebDefense.Core.Models.Serialization;

/// <summary>
/// Upper bounds enforced while reading an untrusted model file. Every reader checks them before allocating, so a
/// hostile file fails with a <see cref="ModelFileException"/> instead of exhausting memory.
/// </summary>
public sealed record ModelReadLimits
{
    public static ModelReadLimits Default { get; } = new();

    /// <summary>Sum of the bytes of all tensor data (storages) in one file. Default 2 GiB.</summary>
    public long MaxTotalTensorBytes { get; init; } = 2L * 1024 * 1024 * 1024;

    /// <summary>Number of tensors (or storages) in one file. Default 100,000.</summary>
    public int MaxTensorCount { get; init; } = 100_000;

    /// <summary>Size of the pickle (<c>data.pkl</c>). Default 64 MiB.</summary>
    public long MaxPickleBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>Entries on the unpickler's value stack. Default 1,000,000.</summary>
    public int MaxPickleStackSize { get; init; } = 1_000_000;

    /// <summary>Entries in the unpickler's memo. Default 1,000,000.</summary>
    public int MaxPickleMemoSize { get; init; } = 1_000_000;

    /// <summary>Open MARKs (container nesting) in the pickle. Default 256.</summary>
    public int MaxPickleNesting { get; init; } = 256;

    /// <summary>Length of one string or bytes value in a pickle (numpy arrays arrive as strings). Default 16 MiB.</summary>
    public int MaxStringBytes { get; init; } = 16 * 1024 * 1024;

    /// <summary>safetensors JSON header size (the reference implementation's limit). Default 100 MB.</summary>
    public long MaxSafetensorsHeaderBytes { get; init; } = 100_000_000;

    /// <summary>Number of dimensions of one tensor. Default 16.</summary>
    public int MaxTensorRank { get; init; } = 16;
}
