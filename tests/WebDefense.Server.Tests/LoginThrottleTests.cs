using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;

namespace WebDefense.Server.Tests;

/// <summary>Wrong passwords throttle the client that sends them (429 + Retry-After), never lock the account, and an unknown e-mail takes as long as a known one.</summary>
public class LoginThrottleTests
{
    private const string Admin = "admin@webdefense.local";

    [Fact]
    public async Task Repeated_wrong_passwords_answer_429_with_retry_after_and_the_right_one_works_once_the_window_passed()
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory(), settings: new Dictionary<string, string>
        {
            ["WebDefense:Login:MaxFailures"] = "3", ["WebDefense:Login:WindowSeconds"] = "3",
        });
        var client = host.CreateClient();
        Task<HttpResponseMessage> Login(string password, string email = Admin) => client.PostAsJsonAsync("/api/auth/login", new { email, password });

        for (var i = 0; i < 3; i++) Assert.Equal(HttpStatusCode.Unauthorized, (await Login("wrong-" + i)).StatusCode);
        var throttled = await Login("Admin-pass-123!");
        Assert.Equal(HttpStatusCode.TooManyRequests, throttled.StatusCode);
        var retryAfter = throttled.Headers.RetryAfter?.Delta;
        Assert.True(retryAfter is { TotalSeconds: > 0 and <= 3 }, $"Retry-After {retryAfter}");
        Assert.Contains("too many failed logins", await throttled.Content.ReadAsStringAsync());

        // The account itself is not locked: once the window has passed the right password works at once.
        await Task.Delay(retryAfter!.Value + TimeSpan.FromMilliseconds(300));
        var ok = await Login("Admin-pass-123!");
        Assert.True(ok.IsSuccessStatusCode, await ok.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task An_unknown_email_answers_in_about_the_time_of_a_known_one()
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory(), settings: new Dictionary<string, string> { ["WebDefense:Login:MaxFailures"] = "1000" });
        var client = host.CreateClient();
        async Task<double> Median(string email)
        {
            var times = new List<double>();
            for (var i = 0; i < 9; i++)
            {
                var watch = Stopwatch.StartNew();
                Assert.Equal(HttpStatusCode.Unauthorized, (await client.PostAsJsonAsync("/api/auth/login", new { email, password = "not-it-" + i })).StatusCode);
                times.Add(watch.Elapsed.TotalMilliseconds);
            }

            return times.Order().ElementAt(times.Count / 2);
        }

        await Median(Admin); // warm-up
        var known = await Median(Admin);
        var unknown = await Median("nobody@example.org");
        // Before the fix an unknown e-mail answered in ~10 ms against ~110 ms: a ratio of 0.1. Hashing evens them out.
        Assert.True(unknown > 0.5 * known && unknown < 2.0 * known, $"known {known:0} ms, unknown {unknown:0} ms");
    }
}
