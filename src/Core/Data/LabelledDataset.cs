namespace WebDefense.Core.Data;

/// <summary>A dataset plus, where the file names them (image folders), the class names by label index. Owns <see cref="Data"/>.</summary>
public sealed class LabelledDataset(ImageDataset data, IReadOnlyList<string>? classNames = null) : IDisposable
{
    public ImageDataset Data { get; } = data;

    /// <summary>Class name of label i at index i, or null when the format carries no names.</summary>
    public IReadOnlyList<string>? ClassNames { get; } = classNames;

    public void Dispose() => Data.Dispose();
}
