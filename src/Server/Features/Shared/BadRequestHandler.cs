using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Mvc;

namespace WebDefense.Server.Features.Shared;

/// <summary>
/// A request the framework cannot bind (malformed JSON, a string where a number belongs, a number out of range, a query
/// value of the wrong type) answers a ValidationProblem that names the field and what it must be, as the API's own
/// validation does, instead of a bare "Bad Request".
/// </summary>
public sealed partial class BadRequestHandler : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext http, Exception exception, CancellationToken ct)
    {
        if (exception is not BadHttpRequestException bad) return false;
        var errors = new Dictionary<string, string[]>();
        if (bad.InnerException is JsonException json)
        {
            var field = json.Path is { Length: > 2 } path && path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : null;
            var where = json.LineNumber is { } line ? $" (line {line + 1}, position {json.BytePositionInLine + 1})" : string.Empty;
            if (field is null || !json.Message.Contains("could not be converted", StringComparison.Ordinal))
            {
                errors["body"] = [$"malformed JSON{where}: the body must be one JSON object"];
            }
            else
            {
                // The message names the record being built, not the field's type: take the type from the endpoint's body type.
                var bodyType = (http.Features.Get<IExceptionHandlerFeature>()?.Endpoint ?? http.GetEndpoint())?.Metadata.GetMetadata<Microsoft.AspNetCore.Http.Metadata.IAcceptsMetadata>()?.RequestType;
                var property = bodyType?.GetProperty(field.Split('.', '[')[0], System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.IgnoreCase);
                errors[field] = [$"must be {Expected(property?.PropertyType)}{where}"];
            }
        }
        else
        {
            errors[bad.Message.Contains("parameter", StringComparison.Ordinal) && ParameterName().Match(bad.Message) is { Success: true } m ? m.Groups[1].Value : "request"] = [bad.Message];
        }

        var problem = new ValidationProblemDetails(errors) { Status = bad.StatusCode, Title = "The request could not be read." };
        http.Response.StatusCode = bad.StatusCode;
        await http.Response.WriteAsJsonAsync(problem, (JsonSerializerOptions?)null, "application/problem+json", ct);
        return true;
    }

    /// <summary>What a value of the field's type looks like in JSON.</summary>
    private static string Expected(Type? type) => (Nullable.GetUnderlyingType(type ?? typeof(object)) ?? type) switch
    {
        null => "a value of another type",
        var t when t == typeof(Guid) => "an id: a GUID string such as \"3f2504e0-4f89-11d3-9a0c-0305e82c3301\"",
        var t when t == typeof(int) => "a whole number from -2147483648 to 2147483647",
        var t when t == typeof(long) => "a whole number",
        var t when t == typeof(double) || t == typeof(float) => "a number",
        var t when t == typeof(bool) => "true or false",
        var t when t == typeof(string) => "a string",
        var t when t.IsArray || (t.IsGenericType && t.GetGenericTypeDefinition() == typeof(List<>)) => "an array",
        var t when t.IsGenericType && t.GetGenericTypeDefinition() == typeof(Dictionary<,>) => "a JSON object",
        _ => "a value of another type",
    };

    [GeneratedRegex("parameter \"[^\"]*?(\\w+)\"")]
    private static partial Regex ParameterName();
}
