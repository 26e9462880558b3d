using System.Net;
using System.Net.Http.Headers;

namespace WebDefense.Server.Tests;

/// <summary>Issue 22's protocol items: per-user rate limits, CORS only where configured, ETags on run reads, Range on artifacts.</summary>
public class ApiPolicyTests
{
    [Fact]
    public async Task Past_its_burst_a_user_gets_429_with_retry_after_while_health_and_other_users_are_served()
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory(), settings: new Dictionary<string, string>
        {
            ["WebDefense:RateLimit:PermitsPerSecond"] = "1", ["WebDefense:RateLimit:Burst"] = "5",
        });
        var client = host.Client();
        var codes = new List<HttpStatusCode>();
        HttpResponseMessage? limited = null;
        for (var i = 0; i < 8; i++)
        {
            var response = await client.GetAsync("/api/defenses");
            codes.Add(response.StatusCode);
            if (response.StatusCode == HttpStatusCode.TooManyRequests) limited ??= response;
        }

        Assert.Equal(HttpStatusCode.OK, codes[0]);
        Assert.True(codes.Count(c => c == HttpStatusCode.OK) is >= 5 and <= 7, string.Join(", ", codes));
        Assert.NotNull(limited);
        Assert.True(limited!.Headers.RetryAfter?.Delta is { TotalSeconds: >= 1 and <= 5 }, $"Retry-After {limited.Headers.RetryAfter}");
        Assert.Contains("too many requests", await limited.Content.ReadAsStringAsync());
        // The limit is per user and on /api only.
        Assert.Equal(HttpStatusCode.OK, (await host.CreateClient().GetAsync("/health")).StatusCode);
        var anonymous = await host.CreateClient().GetAsync("/api/defenses");
        Assert.NotEqual(HttpStatusCode.TooManyRequests, anonymous.StatusCode);
    }

    [Fact]
    public async Task Cors_is_off_unless_origins_are_configured()
    {
        static HttpRequestMessage Preflight() => new(HttpMethod.Options, "/api/runs")
        {
            Headers = { { "Origin", "https://notebooks.example.org" }, { "Access-Control-Request-Method", "POST" }, { "Access-Control-Request-Headers", "x-api-key,content-type" } },
        };

        using (var closed = new ServiceHost(ServiceHost.NewDataDirectory()))
        {
            var response = await closed.CreateClient().SendAsync(Preflight());
            Assert.False(response.Headers.Contains("Access-Control-Allow-Origin"));
        }

        using var open = new ServiceHost(ServiceHost.NewDataDirectory(), settings: new Dictionary<string, string>
        {
            ["WebDefense:Cors:AllowedOrigins:0"] = "https://notebooks.example.org",
        });
        var allowed = await open.CreateClient().SendAsync(Preflight());
        Assert.Equal("https://notebooks.example.org", allowed.Headers.GetValues("Access-Control-Allow-Origin").Single());
        var other = Preflight();
        other.Headers.Remove("Origin");
        other.Headers.Add("Origin", "https://elsewhere.example.com");
        Assert.False((await open.CreateClient().SendAsync(other)).Headers.Contains("Access-Control-Allow-Origin"));
    }

    [Fact]
    public async Task A_run_read_answers_304_while_unchanged_and_a_model_download_resumes_with_range()
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory());
        var client = host.Client();
        var ids = await Api.SetUpAsync(client);
        var id = await Api.StartAsync(client, Api.RnpRun(ids));
        var run = await Api.WaitAsync(client, id, Api.Finished);
        Assert.Equal("Succeeded", run.GetProperty("status").GetString());

        var first = await client.GetAsync($"/api/runs/{id}");
        var etag = first.Headers.ETag;
        Assert.NotNull(etag);
        var again = new HttpRequestMessage(HttpMethod.Get, $"/api/runs/{id}") { Headers = { IfNoneMatch = { etag! } } };
        var notModified = await client.SendAsync(again);
        Assert.Equal(HttpStatusCode.NotModified, notModified.StatusCode);
        Assert.Empty(await notModified.Content.ReadAsByteArrayAsync());
        var stale = new HttpRequestMessage(HttpMethod.Get, $"/api/runs/{id}") { Headers = { IfNoneMatch = { new EntityTagHeaderValue("\"0123\"") } } };
        Assert.Equal(HttpStatusCode.OK, (await client.SendAsync(stale)).StatusCode);

        var whole = await client.GetByteArrayAsync($"/api/runs/{id}/artifacts/model");
        var part = new HttpRequestMessage(HttpMethod.Get, $"/api/runs/{id}/artifacts/model") { Headers = { Range = new RangeHeaderValue(100, 199) } };
        var partial = await client.SendAsync(part);
        Assert.Equal(HttpStatusCode.PartialContent, partial.StatusCode);
        Assert.Equal($"bytes 100-199/{whole.Length}", partial.Content.Headers.ContentRange?.ToString());
        Assert.Equal(whole.AsSpan(100, 100).ToArray(), await partial.Content.ReadAsByteArrayAsync());
    }
}
