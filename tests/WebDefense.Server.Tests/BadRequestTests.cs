using System.Net.Http.Json;
using System.Net;
using System.Text;
using System.Text.Json;

namespace WebDefense.Server.Tests;

/// <summary>Requests the framework cannot bind say which field is wrong and what it must be, as ProblemDetails.</summary>
public class BadRequestTests
{
    [Theory]
    [InlineData("""{"modelId": 12345, "defense": "rnp"}""", "modelId", "an id: a GUID string")]
    [InlineData("""{"defense": "rnp", "seed": 99999999999999}""", "seed", "a whole number from -2147483648 to 2147483647")]
    [InlineData("""{"defense": "rnp", "seeds": 3}""", "seeds", "an array")]
    [InlineData("""{"defense": "rnp", "modelId": """, "body", "malformed JSON")]
    [InlineData("""not json""", "body", "malformed JSON")]
    public async Task A_body_that_cannot_be_read_names_the_field(string body, string field, string expected)
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory());
        var response = await host.Client().PostAsync("/api/runs", new StringContent(body, Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, text);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var errors = JsonDocument.Parse(text).RootElement.GetProperty("errors");
        Assert.Contains(expected, errors.GetProperty(field)[0].GetString());
    }

    [Fact]
    public async Task A_query_value_of_the_wrong_type_names_the_parameter()
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory());
        var response = await host.Client().GetAsync("/api/runs?page=abc");
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, text);
        Assert.Contains("\"abc\"", JsonDocument.Parse(text).RootElement.GetProperty("errors").GetProperty("page")[0].GetString());
    }

    [Fact]
    public async Task A_known_path_with_another_method_is_405_and_with_another_content_type_415()
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory());
        var client = host.Client();
        var put = await client.PutAsync("/api/runs", new StringContent("{}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.MethodNotAllowed, put.StatusCode);
        Assert.Equal(["GET", "POST"], put.Content.Headers.Allow.Order());
        var text = await client.PostAsync("/api/runs", new StringContent("{}", Encoding.UTF8, "text/plain"));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, text.StatusCode);
        Assert.Contains("application/json", await text.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/api/no-such-thing")).StatusCode);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, (await client.DeleteAsync($"/api/runs/{Guid.NewGuid()}/cancel")).StatusCode);
    }

    [Theory]
    [InlineData("status=Done", "status", "Queued, Running, Succeeded, Failed, Cancelled")]
    [InlineData("sort=-accuracy", "sort", "created, status, defense")]
    [InlineData("kind=training", "kind", "post-training, training-time, scan")]
    [InlineData("defense=nope", "defense", "grad-prune, rnp")]
    public async Task An_unknown_filter_value_is_a_400_that_lists_the_allowed_ones(string query, string field, string allowed)
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory());
        var client = host.Client();
        foreach (var url in new[] { $"/api/runs?{query}", $"/api/runs/export.csv?{query}" })
        {
            var response = await client.GetAsync(url);
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{url}: {text}");
            Assert.Contains(allowed, JsonDocument.Parse(text).RootElement.GetProperty("errors").GetProperty(field)[0].GetString());
        }

        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/api/runs?status=succeeded&sort=-afterAsr&kind=scan&defense=scan")).StatusCode);
    }

    [Fact]
    public async Task The_location_of_a_created_team_user_or_key_list_resolves()
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory());
        var client = host.Client();
        var team = await client.PostAsJsonAsync("/api/admin/teams", new { name = "blue" });
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(team.Headers.Location)).StatusCode);
        var teamId = JsonDocument.Parse(await team.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetGuid();
        var user = await client.PostAsJsonAsync("/api/admin/users", new { email = "bo@blue.test", password = "Bo-pass-123!", teamId });
        var got = await client.GetAsync(user.Headers.Location);
        Assert.Equal(HttpStatusCode.OK, got.StatusCode);
        Assert.Equal("bo@blue.test", JsonDocument.Parse(await got.Content.ReadAsStringAsync()).RootElement.GetProperty("email").GetString());
        var userId = JsonDocument.Parse(await user.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetGuid();
        var key = await client.PostAsJsonAsync($"/api/admin/users/{userId}/keys", new { name = "k" });
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(key.Headers.Location)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync($"/api/admin/users/{Guid.NewGuid()}")).StatusCode);
    }
}
