using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Routing.Template;

namespace WebDefense.Server.Features.Shared;

/// <summary>
/// The answer for an /api request no endpoint took: 405 with Allow when the path exists for other methods, 415 when it
/// exists for this method but takes another content type, else 404. (Without this, the /api fallback answered all three
/// with 404 "no such API endpoint".)
/// </summary>
public static class UnmatchedApiRequest
{
    public static IResult Answer(HttpContext http, EndpointDataSource endpoints)
    {
        var path = http.Request.Path;
        var candidates = endpoints.Endpoints.OfType<RouteEndpoint>()
            .Where(e => e.RoutePattern.RawText is { } raw && raw.StartsWith("/api/", StringComparison.Ordinal) && !raw.Contains("**", StringComparison.Ordinal)
                        && new TemplateMatcher(TemplateParser.Parse(raw), new RouteValueDictionary()).TryMatch(path, new RouteValueDictionary()))
            .ToList();
        if (candidates.Count == 0) return Results.Problem("no such API endpoint", statusCode: StatusCodes.Status404NotFound);

        var methods = candidates.SelectMany(e => e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? []).Distinct(StringComparer.OrdinalIgnoreCase).ToList();
        if (!methods.Contains(http.Request.Method, StringComparer.OrdinalIgnoreCase))
        {
            http.Response.Headers.Allow = string.Join(", ", methods);
            return Results.Problem($"{http.Request.Method} is not allowed here; this path takes {string.Join(", ", methods)}", statusCode: StatusCodes.Status405MethodNotAllowed);
        }

        var accepts = candidates.Where(e => e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods.Contains(http.Request.Method, StringComparer.OrdinalIgnoreCase) == true)
            .SelectMany(e => e.Metadata.GetMetadata<IAcceptsMetadata>()?.ContentTypes ?? []).Distinct().ToList();
        return accepts.Count > 0
            ? Results.Problem($"this endpoint takes {string.Join(" or ", accepts)}, not {(string.IsNullOrEmpty(http.Request.ContentType) ? "a body without a Content-Type" : http.Request.ContentType)}",
                statusCode: StatusCodes.Status415UnsupportedMediaType)
            : Results.Problem("no such API endpoint", statusCode: StatusCodes.Status404NotFound);
    }
}
