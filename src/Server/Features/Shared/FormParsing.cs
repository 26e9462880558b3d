using System.Globalization;

namespace WebDefense.Server.Features.Shared;

/// <summary>Parses the text fields of upload forms; failures are collected per field for a ValidationProblem.</summary>
public sealed class FormParsing(MultipartUpload form)
{
    public Dictionary<string, string[]> Errors { get; } = new(StringComparer.OrdinalIgnoreCase);

    public string? Text(string name) => form.Field(name);

    public int? Int(string name, bool required, int min, int max)
    {
        var text = form.Field(name);
        if (text is null)
        {
            if (required) Errors[name] = ["required"];
            return null;
        }

        if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) || value < min || value > max)
        {
            Errors[name] = [$"must be a whole number between {min} and {max}"];
            return null;
        }

        return value;
    }

    public int[]? Shape(string name, bool required)
    {
        var text = form.Field(name);
        if (text is null)
        {
            if (required) Errors[name] = ["required, e.g. \"3,32,32\" (C,H,W)"];
            return null;
        }

        var parts = text.Split([',', 'x', '×', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length != 3 || !parts.All(p => int.TryParse(p, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v is >= 1 and <= 4096))
        {
            Errors[name] = ["must be three positive numbers C,H,W, e.g. \"1,28,28\""];
            return null;
        }

        return parts.Select(p => int.Parse(p, CultureInfo.InvariantCulture)).ToArray();
    }

    /// <summary>Comma-separated floats, one per channel (a single value is repeated).</summary>
    public float[]? Floats(string name, int channels, float fallback)
    {
        var text = form.Field(name);
        if (text is null) return Enumerable.Repeat(fallback, channels).ToArray();
        var parts = text.Split([',', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var values = new List<float>();
        foreach (var p in parts)
        {
            if (!float.TryParse(p, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || !float.IsFinite(v))
            {
                Errors[name] = ["must be comma-separated numbers, one per channel"];
                return null;
            }

            values.Add(v);
        }

        if (values.Count == 1) return Enumerable.Repeat(values[0], channels).ToArray();
        if (values.Count != channels)
        {
            Errors[name] = [$"needs {channels} values (one per channel) or one value for all"];
            return null;
        }

        return values.ToArray();
    }

    /// <summary>Comma-separated floats of any count (checked against the channels later), or null when absent.</summary>
    public float[]? FloatList(string name)
    {
        var text = form.Field(name);
        if (text is null) return null;
        var values = new List<float>();
        foreach (var p in text.Split([',', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!float.TryParse(p, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || !float.IsFinite(v))
            {
                Errors[name] = ["must be comma-separated numbers, one per channel"];
                return null;
            }

            values.Add(v);
        }

        if (values.Count == 0) Errors[name] = ["must be comma-separated numbers, one per channel"];
        return values.ToArray();
    }

    public static string Join(float[] values) => string.Join(",", values.Select(v => v.ToString("R", CultureInfo.InvariantCulture)));

    public static float[] Split(string text) =>
        text.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(v => float.Parse(v, CultureInfo.InvariantCulture)).ToArray();
}
