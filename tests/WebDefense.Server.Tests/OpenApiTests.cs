using System.Text.Json;

namespace WebDefense.Server.Tests;

/// <summary>The served OpenAPI document as a client generator reads it.</summary>
public class OpenApiTests
{
    [Fact]
    public async Task The_document_says_how_to_authenticate_names_every_operation_and_types_numbers_as_numbers()
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory());
        var doc = JsonDocument.Parse(await host.CreateClient().GetStringAsync("/openapi/v1.json")).RootElement;

        var apiKey = doc.GetProperty("components").GetProperty("securitySchemes").GetProperty("ApiKey");
        Assert.Equal("apiKey", apiKey.GetProperty("type").GetString());
        Assert.Equal("header", apiKey.GetProperty("in").GetString());
        Assert.Equal("X-Api-Key", apiKey.GetProperty("name").GetString());

        var operations = doc.GetProperty("paths").EnumerateObject()
            .SelectMany(path => path.Value.EnumerateObject().Where(m => m.Name is "get" or "post" or "put" or "delete" or "patch")
                .Select(m => (Path: path.Name, Method: m.Name, Operation: m.Value)))
            .ToList();
        Assert.True(operations.Count > 30, $"{operations.Count} operations");
        var ids = operations.Select(o => o.Operation.TryGetProperty("operationId", out var id) ? id.GetString() : null).ToList();
        Assert.DoesNotContain(null, ids);
        Assert.Equal(ids.Count, ids.Distinct().Count());
        Assert.Contains("getRunsById", ids);

        // Operations behind a login say so, and document 401/403; the login itself does not ask for a key.
        var getRun = operations.Single(o => o.Path == "/api/runs/{id}" && o.Method == "get").Operation;
        Assert.True(getRun.GetProperty("responses").TryGetProperty("401", out _));
        Assert.Contains("ApiKey", getRun.GetProperty("security").ToString());
        var login = operations.Single(o => o.Path == "/api/auth/login" && o.Method == "post").Operation;
        Assert.False(login.TryGetProperty("security", out _));
        // Every /api operation may answer the rate limit's 429; the run read documents its 304 for If-None-Match.
        Assert.All(operations.Where(o => o.Path.StartsWith("/api/", StringComparison.Ordinal)), o => Assert.True(o.Operation.GetProperty("responses").TryGetProperty("429", out _), $"{o.Method} {o.Path}"));
        Assert.True(getRun.GetProperty("responses").TryGetProperty("304", out _));
        Assert.True(getRun.GetProperty("responses").GetProperty("200").GetProperty("content").TryGetProperty("application/json", out _));

        // Filters with a fixed set of values are enums.
        var list = operations.Single(o => o.Path == "/api/runs" && o.Method == "get").Operation;
        string[] Enum(string name) => list.GetProperty("parameters").EnumerateArray().Single(p => p.GetProperty("name").GetString() == name)
            .GetProperty("schema").GetProperty("enum").EnumerateArray().Select(v => v.GetString()!).ToArray();
        Assert.Contains("Queued", Enum("status"));
        Assert.Contains("-created", Enum("sort"));
        Assert.Contains("rnp", Enum("defense"));
        Assert.Equal(["post-training", "training-time", "scan"], Enum("kind"));

        // Numbers are numbers: no schema accepts a number or a string ("integer | string" makes generated clients take either).
        var loose = new List<string>();
        void Walk(JsonElement e, string where)
        {
            if (e.ValueKind == JsonValueKind.Object)
            {
                if (e.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.Array)
                {
                    var kinds = type.EnumerateArray().Select(t => t.GetString()).ToList();
                    if (kinds.Contains("string") && (kinds.Contains("integer") || kinds.Contains("number"))) loose.Add(where);
                }

                foreach (var p in e.EnumerateObject()) Walk(p.Value, $"{where}/{p.Name}");
            }
            else if (e.ValueKind == JsonValueKind.Array)
            {
                var i = 0;
                foreach (var item in e.EnumerateArray()) Walk(item, $"{where}/{i++}");
            }
        }

        Walk(doc, "");
        Assert.True(loose.Count == 0, string.Join("\n", loose.Take(10)));
    }
}
