using System.Globalization;
using System.Text.Json;

namespace WebDefense.Core.Defenses.Framework;

public enum ParameterKind { Integer, Number, Boolean, Choice }

/// <summary>One tunable of a defense: what the API and UI render and validate.</summary>
public sealed record ParameterSpec(string Name, ParameterKind Kind, object Default, string Help, double? Min = null, double? Max = null, string[]? Choices = null)
{
    public static ParameterSpec Int(string name, int @default, int min, int max, string help) => new(name, ParameterKind.Integer, @default, help, min, max);
    public static ParameterSpec Number(string name, double @default, double min, double max, string help) => new(name, ParameterKind.Number, @default, help, min, max);
    public static ParameterSpec Flag(string name, bool @default, string help) => new(name, ParameterKind.Boolean, @default, help);
    public static ParameterSpec Choice(string name, string @default, string[] choices, string help) => new(name, ParameterKind.Choice, @default, help, Choices: choices);

    /// <summary>Converts and range-checks a user value (a CLR value or a JSON element); null → an error message.</summary>
    internal object Convert(object value, out string? error)
    {
        error = null;
        if (value is JsonElement json)
        {
            value = json.ValueKind switch
            {
                JsonValueKind.Number => json.GetDouble(),
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                JsonValueKind.String => json.GetString()!,
                _ => json.ToString(),
            };
        }

        switch (Kind)
        {
            case ParameterKind.Boolean:
                if (value is bool b) return b;
                if (value is string s && bool.TryParse(s, out var parsed)) return parsed;
                error = "must be true or false";
                return Default;
            case ParameterKind.Choice:
                if (value is string c && Choices!.Contains(c, StringComparer.Ordinal)) return c;
                error = $"must be one of {string.Join(", ", Choices!)}";
                return Default;
            default:
                double number;
                if (value is string text && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var fromText)) number = fromText;
                else if (value is IConvertible convertible and not string and not bool) number = convertible.ToDouble(CultureInfo.InvariantCulture);
                else { error = "must be a number"; return Default; }
                if (!double.IsFinite(number)) { error = "must be finite"; return Default; }
                if (Kind == ParameterKind.Integer && number != Math.Floor(number)) { error = "must be a whole number"; return Default; }
                if (number < Min || number > Max) { error = $"must be between {Min?.ToString(CultureInfo.InvariantCulture)} and {Max?.ToString(CultureInfo.InvariantCulture)}"; return Default; }
                return Kind == ParameterKind.Integer ? (object)(int)number : number;
        }
    }
}

/// <summary>Invalid defense parameters; <see cref="Errors"/> maps each parameter name to what is wrong.</summary>
public sealed class DefenseParameterException(IReadOnlyDictionary<string, string> errors)
    : Exception("invalid defense parameters: " + string.Join("; ", errors.Select(e => $"{e.Key}: {e.Value}")))
{
    public IReadOnlyDictionary<string, string> Errors { get; } = errors;
}

/// <summary>Fully resolved parameters: the schema's defaults with the user's overrides applied and checked.</summary>
public sealed class DefenseParameters
{
    private readonly Dictionary<string, object> _values;

    private DefenseParameters(Dictionary<string, object> values) => _values = values;

    public IReadOnlyDictionary<string, object> Values => _values;

    public static DefenseParameters Resolve(IReadOnlyList<ParameterSpec> schema, IReadOnlyDictionary<string, object>? overrides = null)
    {
        var values = schema.ToDictionary(p => p.Name, p => p.Default, StringComparer.Ordinal);
        var errors = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, value) in overrides ?? new Dictionary<string, object>())
        {
            var spec = schema.FirstOrDefault(p => p.Name == name);
            if (spec is null)
            {
                errors[name] = $"unknown parameter (known: {string.Join(", ", schema.Select(p => p.Name))})";
                continue;
            }

            values[name] = spec.Convert(value, out var error);
            if (error is not null) errors[name] = error;
        }

        return errors.Count > 0 ? throw new DefenseParameterException(errors) : new DefenseParameters(values);
    }

    public int Int(string name) => (int)_values[name];
    public double Number(string name) => (double)_values[name];
    public bool Flag(string name) => (bool)_values[name];
    public string Choice(string name) => (string)_values[name];
}
