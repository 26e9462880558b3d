using System.Text.Json;
using System.Text.Json.Serialization;

namespace WebDefense.Core.Runs;

/// <summary>The wire form of <see cref="RunEvent"/>: one compact JSON object per line, discriminated by "type".</summary>
public static class RunEventJson
{
    public static JsonSerializerOptions Options { get; } = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = false,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        AllowOutOfOrderMetadataProperties = true,
        Converters = { new JsonStringEnumConverter() },
    };

    /// <summary>One line of JSON, without the line break.</summary>
    public static string ToLine(RunEvent runEvent) => JsonSerializer.Serialize(runEvent, Options);

    /// <summary>Parses one line; null when it is not a run event.</summary>
    public static RunEvent? TryParse(string? line)
    {
        if (string.IsNullOrWhiteSpace(line) || !line.TrimStart().StartsWith('{'))
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize<RunEvent>(line, Options);
        }
        catch (Exception e) when (e is JsonException or NotSupportedException)
        {
            return null;
        }
    }
}
