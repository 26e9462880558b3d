using System.ComponentModel.DataAnnotations;
using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;
using WebDefense.Server.Auth;

namespace WebDefense.Server.Hosting;

/// <summary>Per-client request limits on /api (<c>WebDefense:RateLimit</c>); 0 permits per second turns them off.</summary>
public sealed class RateLimitOptions
{
    /// <summary>Requests per second each user (or, before signing in, each client address) gets on average.</summary>
    [Range(0, 100000)]
    public int PermitsPerSecond { get; set; } = 20;

    /// <summary>Requests a user may make at once above the average (the bucket's size).</summary>
    [Range(1, 100000)]
    public int Burst { get; set; } = 200;
}

/// <summary>Cross-origin requests (<c>WebDefense:Cors</c>): none unless origins are listed.</summary>
public sealed class CorsOptions
{
    /// <summary>Origins allowed to call the API from a browser, e.g. "https://notebooks.example.org". Empty: no CORS headers at all.</summary>
    public string[] AllowedOrigins { get; set; } = [];
}

/// <summary>The API's rate limiter and CORS policy, both bound from configuration.</summary>
public static class ApiPolicies
{
    private const string CorsPolicy = "configured-origins";

    public static WebApplicationBuilder AddApiPolicies(this WebApplicationBuilder builder)
    {
        var options = builder.BoundWebDefenseOptions();
        if (options.Cors.AllowedOrigins.Length > 0)
        {
            builder.Services.AddCors(c => c.AddPolicy(CorsPolicy, p => p.WithOrigins(options.Cors.AllowedOrigins)
                .WithMethods("GET", "POST", "DELETE")
                .WithHeaders("Content-Type", ApiKeyAuthenticationHandler.Header, "Idempotency-Key", "If-None-Match", "Range")
                .WithExposedHeaders("Location", "ETag", "Retry-After", "Content-Disposition", "Content-Range")));
        }

        builder.Services.AddRateLimiter(limiter =>
        {
            limiter.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            limiter.OnRejected = async (context, ct) =>
            {
                var seconds = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)) : 1;
                var limits = Limits(context.HttpContext);
                context.HttpContext.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
                await Results.Problem($"too many requests: this client may make {limits.PermitsPerSecond} per second on average " +
                                      $"(bursts of {limits.Burst}); try again in {seconds} s",
                    statusCode: StatusCodes.Status429TooManyRequests, title: "Too many requests").ExecuteAsync(context.HttpContext);
            };
            limiter.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(http =>
            {
                var limits = Limits(http);
                if (limits.PermitsPerSecond == 0 || !http.Request.Path.StartsWithSegments("/api"))
                {
                    return RateLimitPartition.GetNoLimiter("unlimited");
                }

                // Signed-in users (cookie or API key) by user; anyone else by address, so that strangers share one bucket per address.
                var user = http.User.UserId();
                var key = user != Guid.Empty ? $"user:{user}" : $"addr:{http.Connection.RemoteIpAddress}";
                return RateLimitPartition.GetTokenBucketLimiter(key, _ => new TokenBucketRateLimiterOptions
                {
                    TokenLimit = limits.Burst,
                    TokensPerPeriod = limits.PermitsPerSecond,
                    ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                    QueueLimit = 0,
                    AutoReplenishment = true,
                });
            });
        });
        return builder;
    }

    /// <summary>After authentication (the limiter partitions by user), before the endpoints.</summary>
    public static WebApplication UseApiPolicies(this WebApplication app)
    {
        var options = app.Services.GetRequiredService<IOptions<WebDefenseOptions>>().Value;
        if (options.Cors.AllowedOrigins.Length > 0) app.UseCors(CorsPolicy);
        app.UseRateLimiter();
        return app;
    }

    private static RateLimitOptions Limits(HttpContext http) => http.RequestServices.GetRequiredService<IOptions<WebDefenseOptions>>().Value.RateLimit;
}
