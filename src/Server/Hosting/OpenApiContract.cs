using System.Text;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace WebDefense.Server.Hosting;

/// <summary>
/// What generated clients need from /openapi/v1.json beyond what the endpoints declare: how to authenticate (an
/// <c>X-Api-Key</c> header, or the dashboard's session cookie), a unique operationId on every operation (from its
/// method and route), the 401 and 403 answers of every operation that needs a login, the 429 of the rate limit on every /api
/// operation, and the values of the list filters as enums.
/// </summary>
public static class OpenApiContract
{
    public const string ApiKeyScheme = "ApiKey";
    public const string CookieScheme = "SessionCookie";

    public static void Configure(OpenApiOptions options)
    {
        options.AddDocumentTransformer((document, _, _) =>
        {
            document.Info.Title = "WebDefense API";
            document.Info.Description = "Backdoor defenses for image classifiers: upload a model and data sets, start runs, read their results. "
                + "Authenticate with an API key in the X-Api-Key header (issued on the Admin page or by `admin issue-key`). Errors are RFC 9457 problem details; "
                + "a 400 names the field in `errors`.";
            document.Components ??= new OpenApiComponents();
            document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
            document.Components.SecuritySchemes[ApiKeyScheme] = new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.ApiKey, In = ParameterLocation.Header, Name = "X-Api-Key",
                Description = "An API key of a user (wd_…).",
            };
            document.Components.SecuritySchemes[CookieScheme] = new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.ApiKey, In = ParameterLocation.Cookie, Name = ".AspNetCore.Identity.Application",
                Description = "The dashboard's session after POST /api/auth/login.",
            };
            return Task.CompletedTask;
        });

        options.AddOperationTransformer((operation, context, _) =>
        {
            var description = context.Description;
            operation.OperationId ??= OperationId(description.HttpMethod ?? "GET", description.RelativePath ?? "");
            // Query filters that take a fixed set of values list them, so that clients get enums rather than free strings.
            var route = description.RelativePath ?? "";
            var values = route.StartsWith("api/runs", StringComparison.Ordinal) ? Features.Runs.RunsApi.FilterValues
                : route.StartsWith("api/datasets", StringComparison.Ordinal) ? new Dictionary<string, string[]> { ["kind"] = Features.Datasets.DatasetKinds.All }
                : null;
            foreach (var parameter in operation.Parameters ?? [])
            {
                if (values is not null && parameter.In == ParameterLocation.Query && parameter.Name is { } name && values.TryGetValue(name, out var allowed)
                    && parameter.Schema is OpenApiSchema schema)
                {
                    schema.Enum = [.. allowed.Select(v => (System.Text.Json.Nodes.JsonNode)System.Text.Json.Nodes.JsonValue.Create(v))];
                }
            }
            var metadata = description.ActionDescriptor.EndpointMetadata;
            var needsLogin = metadata.OfType<IAuthorizeData>().Any() && !metadata.OfType<IAllowAnonymous>().Any();
            operation.Responses ??= new OpenApiResponses();
            if (needsLogin)
            {
                operation.Security =
                [
                    new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(ApiKeyScheme, context.Document)] = [] },
                    new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(CookieScheme, context.Document)] = [] },
                ];
                operation.Responses.TryAdd("401", Problem("No valid API key or session: log in, or send X-Api-Key."));
                operation.Responses.TryAdd("403", Problem("Logged in, but this operation needs the admin role."));
            }

            if (description.RelativePath?.StartsWith("api/", StringComparison.Ordinal) == true)
            {
                operation.Responses.TryAdd("429", Problem("Too many requests from this user (WebDefense:RateLimit): wait for the Retry-After header's seconds."));
            }

            return Task.CompletedTask;
        });
    }

    private static OpenApiResponse Problem(string description) => new()
    {
        Description = description,
        Content = new Dictionary<string, OpenApiMediaType> { ["application/problem+json"] = new() },
    };

    /// <summary>"GET api/runs/{id}/artifacts/metrics.json" → "getRunsByIdArtifactsMetricsJson".</summary>
    public static string OperationId(string method, string route)
    {
        var id = new StringBuilder(method.ToLowerInvariant());
        foreach (var segment in route.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (segment == "api") continue;
            if (segment.StartsWith('{'))
            {
                var name = segment.Trim('{', '}').Split(':')[0];
                id.Append("By").Append(char.ToUpperInvariant(name[0])).Append(name[1..]);
                continue;
            }

            foreach (var word in segment.Split('-', '.', '_'))
            {
                if (word.Length > 0) id.Append(char.ToUpperInvariant(word[0])).Append(word[1..]);
            }
        }

        return id.ToString();
    }
}
