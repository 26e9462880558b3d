using System.Net;
using System.Text.Json;

namespace WebDefense.Client.Api;

/// <summary>
/// A non-success answer of the API, read from its ProblemDetails: the title/detail and, for validation problems,
/// the message per field (keys as the API names them, e.g. "modelId", "parameters.ratio").
/// </summary>
public sealed class ApiException(HttpStatusCode status, string message, IReadOnlyDictionary<string, string[]> fieldErrors) : Exception(message)
{
    public HttpStatusCode Status { get; } = status;

    public IReadOnlyDictionary<string, string[]> FieldErrors { get; } = fieldErrors;

    /// <summary>The first message for <paramref name="field"/> (case-insensitive), or null.</summary>
    public string? For(string field) =>
        FieldErrors.FirstOrDefault(e => string.Equals(e.Key, field, StringComparison.OrdinalIgnoreCase)).Value?.FirstOrDefault();

    public static async Task<ApiException> FromResponseAsync(HttpResponseMessage response, CancellationToken ct = default)
    {
        var text = await response.Content.ReadAsStringAsync(ct);
        var fields = new Dictionary<string, string[]>(StringComparer.OrdinalIgnoreCase);
        string? message = null;
        try
        {
            using var doc = JsonDocument.Parse(text);
            var root = doc.RootElement;
            if (root.ValueKind == JsonValueKind.Object)
            {
                if (root.TryGetProperty("detail", out var d) && d.ValueKind == JsonValueKind.String) message = d.GetString();
                if (message is null && root.TryGetProperty("title", out var t) && t.ValueKind == JsonValueKind.String) message = t.GetString();
                if (root.TryGetProperty("errors", out var errors) && errors.ValueKind == JsonValueKind.Object)
                {
                    foreach (var e in errors.EnumerateObject())
                    {
                        fields[e.Name] = e.Value.ValueKind == JsonValueKind.Array
                            ? e.Value.EnumerateArray().Select(v => v.GetString() ?? "").ToArray()
                            : [e.Value.ToString()];
                    }
                }
            }
        }
        catch (JsonException)
        {
            message = string.IsNullOrWhiteSpace(text) ? null : text.Trim();
        }

        message ??= $"{(int)response.StatusCode} {response.ReasonPhrase}";
        if (fields.Count > 0) message = $"{message}: {string.Join("; ", fields.Select(f => $"{f.Key}: {string.Join(" ", f.Value)}"))}";
        return new ApiException(response.StatusCode, message, fields);
    }
}
