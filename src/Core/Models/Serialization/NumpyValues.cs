using System.Text;

namespace WebDefense.Core.Models.Serialization;

/// <summary>
/// Inert stand-ins for the numpy values that training checkpoints carry next to the model (BackdoorBench's
/// <c>original_index</c>, <c>np.float64</c> accuracies …). They are recognised so such a checkpoint can be read; their
/// contents are kept as raw bytes and never interpreted or executed.
/// </summary>
internal static class NumpyValues
{
    public static object? Resolve(string qualified) => qualified switch
    {
        "numpy.core.multiarray._reconstruct" or "numpy._core.multiarray._reconstruct" =>
            new PickleCallable(qualified, _ => new NumpyArray()),
        "numpy.core.multiarray.scalar" or "numpy._core.multiarray.scalar" =>
            new PickleCallable(qualified, args => args is [NumpyDType d, ..] ? new NumpyScalar(d.Code) : throw Bad(qualified)),
        "numpy.ndarray" => new NumpyTypeToken("ndarray"),
        "numpy.dtype" => new PickleCallable(qualified, args => args is [string code, ..] ? new NumpyDType(code) : throw Bad(qualified)),
        "_codecs.encode" => new PickleCallable(qualified, Encode),
        _ => null,
    };

    /// <summary><c>_codecs.encode(str, 'latin1')</c>: numpy's way to pickle raw bytes in protocol 2.</summary>
    private static object Encode(object?[] args)
    {
        if (args is not [string text, string encoding] || encoding is not ("latin1" or "latin-1" or "iso-8859-1"))
        {
            throw new ModelFileException("_codecs.encode is only allowed as encode(str, 'latin1')");
        }

        if (text.Any(c => c > 0xff))
        {
            throw new ModelFileException("_codecs.encode argument is not latin-1 text");
        }

        return Encoding.Latin1.GetBytes(text);
    }

    private static ModelFileException Bad(string name) => new($"{name} called with unexpected arguments");
}

/// <summary>Target of a pickle BUILD opcode (sets an object's state).</summary>
internal interface IPickleBuildable
{
    void Build(object? state);
}

internal sealed record NumpyTypeToken(string Name);

internal sealed class NumpyDType(string code) : IPickleBuildable
{
    public string Code => code;

    public void Build(object? state)
    {
        // (version, byteorder, subarray, names, fields, elsize, alignment, flags): not needed.
    }
}

internal sealed class NumpyArray : IPickleBuildable
{
    public object? State { get; private set; }

    public void Build(object? state) => State = state;
}

internal sealed class NumpyScalar(string dtype)
{
    public string DType => dtype;
}
