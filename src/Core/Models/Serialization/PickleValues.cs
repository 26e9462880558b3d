namespace WebDefense.Core.Models.Serialization;

/// <summary>A Python dict or OrderedDict read from a pickle: insertion-ordered, keys are str, int, bool, None or tuples.</summary>
internal sealed class PickleDict
{
    private readonly List<KeyValuePair<object?, object?>> _items = [];
    private readonly Dictionary<string, int> _index = new(StringComparer.Ordinal);

    public IReadOnlyList<KeyValuePair<object?, object?>> Items => _items;
    public int Count => _items.Count;

    /// <summary>The object's <c>__dict__</c> set by BUILD (e.g. an OrderedDict's <c>_metadata</c>); not used.</summary>
    public object? State { get; set; }

    public void Set(object? key, object? value)
    {
        var k = KeyText(key);
        if (_index.TryGetValue(k, out var i))
        {
            _items[i] = new(key, value);
        }
        else
        {
            _index[k] = _items.Count;
            _items.Add(new(key, value));
        }
    }

    public bool TryGet(string key, out object? value)
    {
        if (_index.TryGetValue(KeyText(key), out var i))
        {
            value = _items[i].Value;
            return true;
        }

        value = null;
        return false;
    }

    /// <summary>A key as text: strings as they are, ints and bools in Python spelling, tuples joined with '.'.</summary>
    public static string KeyText(object? key) => key switch
    {
        string s => s,
        bool b => b ? "True" : "False",
        long or int or System.Numerics.BigInteger => Convert.ToString(key, System.Globalization.CultureInfo.InvariantCulture)!,
        null => "None",
        object?[] tuple when tuple.All(x => x is not object?[]) => string.Join(".", tuple.Select(KeyText)),
        _ => throw new ModelFileException($"pickle dict key of type {PickleReader.Describe(key)} is not supported"),
    };
}

/// <summary>A callable produced by an allowed GLOBAL; REDUCE/NEWOBJ call it with the argument tuple.</summary>
internal sealed record PickleCallable(string QualifiedName, Func<object?[], object?> Invoke);

/// <summary>A dtype token produced by an allowed <c>torch.*Storage</c> GLOBAL.</summary>
internal sealed record StorageTypeToken(string Name, TorchSharp.torch.ScalarType DType);
