using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.Options;
using WebDefense.Server.Hosting;

namespace WebDefense.Server.Auth;

/// <summary>
/// Failed logins are counted per client address and e-mail (and per client address alone, against spraying many
/// accounts). Past the limit that client gets 429 with Retry-After until the window has moved on; the account itself
/// is never locked, so a stranger cannot lock anyone out, and the owner logs in from anywhere else as usual.
/// In memory, per web process (a PostgreSQL pool's web processes each count their own).
/// </summary>
public sealed class LoginThrottle(IOptions<WebDefenseOptions> options, TimeProvider clock)
{
    private readonly ConcurrentDictionary<string, Queue<DateTimeOffset>> _failures = new();

    private LoginOptions Options => options.Value.Login;

    /// <summary>Null when the client may try; else how long it must wait.</summary>
    public TimeSpan? RetryAfter(IPAddress? client, string email)
    {
        var now = clock.GetUtcNow();
        var window = TimeSpan.FromSeconds(Options.WindowSeconds);
        TimeSpan? Wait(string key, int limit)
        {
            if (!_failures.TryGetValue(key, out var times)) return null;
            lock (times)
            {
                while (times.Count > 0 && now - times.Peek() >= window) times.Dequeue();
                return times.Count >= limit ? times.Peek() + window - now : null;
            }
        }

        var account = Wait(AccountKey(client, email), Options.MaxFailures);
        var address = Wait(AddressKey(client), Options.MaxFailuresPerClient);
        return new[] { account, address }.Max(); // the longer wait; null when neither applies
    }

    public void Failed(IPAddress? client, string email)
    {
        var now = clock.GetUtcNow();
        foreach (var key in new[] { AccountKey(client, email), AddressKey(client) })
        {
            var times = _failures.GetOrAdd(key, _ => new Queue<DateTimeOffset>());
            lock (times) times.Enqueue(now);
        }
    }

    public void Succeeded(IPAddress? client, string email) => _failures.TryRemove(AccountKey(client, email), out _);

    private static string AccountKey(IPAddress? client, string email) => $"{client}|{email.Trim().ToUpperInvariant()}";

    private static string AddressKey(IPAddress? client) => $"{client}|*";
}

/// <summary>Login throttling: failures allowed per client and e-mail, and per client, within the window.</summary>
public sealed class LoginOptions
{
    public int MaxFailures { get; set; } = 10;
    public int MaxFailuresPerClient { get; set; } = 50;
    public int WindowSeconds { get; set; } = 600;
}
