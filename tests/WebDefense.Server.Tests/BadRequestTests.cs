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
}
