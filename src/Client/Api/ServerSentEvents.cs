using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;

namespace WebDefense.Client.Api;

/// <summary>Reads a text/event-stream (event/data fields, blank line ends an event) into typed messages with JSON data.</summary>
public static class ServerSentEvents
{
    public static async IAsyncEnumerable<RunEventMessage> ReadAsync(Stream stream, [EnumeratorCancellation] CancellationToken ct = default)
    {
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var type = "message";
        var data = new StringBuilder();
        while (await reader.ReadLineAsync(ct) is { } line)
        {
            if (line.Length == 0)
            {
                if (data.Length > 0 && TryParse(data.ToString(), out var json)) yield return new RunEventMessage(type, json);
                type = "message";
                data.Clear();
                continue;
            }

            if (line.StartsWith(':')) continue;
            var colon = line.IndexOf(':');
            var field = colon < 0 ? line : line[..colon];
            var value = colon < 0 ? "" : line[(colon + 1)..].TrimStart(' ');
            switch (field)
            {
                case "event":
                    type = value;
                    break;
                case "data":
                    if (data.Length > 0) data.Append('\n');
                    data.Append(value);
                    break;
            }
        }

        if (data.Length > 0 && TryParse(data.ToString(), out var last)) yield return new RunEventMessage(type, last);
    }

    private static bool TryParse(string text, out JsonElement json)
    {
        try
        {
            using var doc = JsonDocument.Parse(text);
            json = doc.RootElement.Clone();
            return true;
        }
        catch (JsonException)
        {
            json = default;
            return false;
        }
    }
}
