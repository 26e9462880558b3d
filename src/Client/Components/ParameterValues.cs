using System.Globalization;
using System.Text.Json;
using WebDefense.Client.Api;

namespace WebDefense.Client.Components;

/// <summary>
/// The values of a defense's parameter form, generated from its schema and filled with the defaults. Only values that
/// differ from the default are sent, so a run records what the user changed; the server resolves the rest.
/// </summary>
public sealed class ParameterValues
{
    private readonly Dictionary<string, object?> _values = new(StringComparer.Ordinal);

    public ParameterValues(IReadOnlyList<ParameterInfo> schema)
    {
        Schema = schema;
        foreach (var p in schema) _values[p.Name] = DefaultOf(p);
    }

    public IReadOnlyList<ParameterInfo> Schema { get; }

    public double? Number(string name) => _values[name] as double?;

    public bool Flag(string name) => _values[name] is true;

    public string? Text(string name) => _values[name] as string;

    public void Set(string name, object? value) => _values[name] = value;

    public void Reset()
    {
        foreach (var p in Schema) _values[p.Name] = DefaultOf(p);
    }

    /// <summary>The client-side check of one value against its schema (the server checks again).</summary>
    public string? Error(ParameterInfo p) => Error(p, _values[p.Name]);

    /// <summary>The same check of a value about to be set (a field's own validation runs with it).</summary>
    public static string? Error(ParameterInfo p, object? v)
    {
        switch (p.Kind)
        {
            case "integer" or "number":
                if (v is not double d) return "required";
                if (p.Kind == "integer" && d != Math.Floor(d)) return "must be a whole number";
                if (p.Min is { } min && d < min) return $"must be at least {min.ToString(CultureInfo.InvariantCulture)}";
                if (p.Max is { } max && d > max) return $"must be at most {max.ToString(CultureInfo.InvariantCulture)}";
                return null;
            case "choice":
                return v is string s && (p.Choices is null || p.Choices.Contains(s)) ? null : $"must be one of {string.Join(", ", p.Choices ?? [])}";
            default:
                return null;
        }
    }

    public bool IsValid => Schema.All(p => Error(p) is null);

    /// <summary>The values that differ from the defaults, as the API's "parameters" object.</summary>
    public Dictionary<string, JsonElement> Overrides()
    {
        var result = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var p in Schema)
        {
            var value = _values[p.Name];
            if (Equals(value, DefaultOf(p))) continue;
            result[p.Name] = JsonSerializer.SerializeToElement(value);
        }

        return result;
    }

    private static object? DefaultOf(ParameterInfo p) => p.Default.ValueKind switch
    {
        JsonValueKind.Number => p.Default.GetDouble(),
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.String => p.Default.GetString(),
        _ => null,
    };
}
