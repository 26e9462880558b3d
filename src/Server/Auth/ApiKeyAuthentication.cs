using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using WebDefense.Server.Data;

namespace WebDefense.Server.Auth;

/// <summary>Authenticates <c>X-Api-Key: wd_…</c> by the key's SHA-256 and signs in its user with their team and roles.</summary>
public sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder,
    AppDbContext db, IUserClaimsPrincipalFactory<User> claims)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "ApiKey";
    public const string Header = "X-Api-Key";

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (!Request.Headers.TryGetValue(Header, out var values) || string.IsNullOrWhiteSpace(values.ToString()))
        {
            return AuthenticateResult.NoResult();
        }

        var hash = ApiKeys.Hash(values.ToString().Trim());
        var key = await db.ApiKeys.Include(k => k.User).AsNoTracking()
            .FirstOrDefaultAsync(k => k.Hash == hash && k.RevokedAt == null, Context.RequestAborted);
        if (key?.User is null) return AuthenticateResult.Fail("invalid API key");

        var principal = await claims.CreateAsync(key.User);
        return AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(new ClaimsIdentity(principal.Claims, SchemeName)), SchemeName));
    }
}

public static class ApiKeys
{
    public static string Generate() => "wd_" + Base64UrlEncode(RandomNumberGenerator.GetBytes(32));

    public static string Hash(string raw) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(raw)));

    public static string Prefix(string raw) => raw[..Math.Min(10, raw.Length)];

    /// <summary>Creates a key for a user; returns the raw key (shown once).</summary>
    public static async Task<(ApiKey Key, string Raw)> CreateAsync(AppDbContext db, Guid userId, string name, string? raw = null)
    {
        raw ??= Generate();
        var key = new ApiKey { UserId = userId, Name = name, Prefix = Prefix(raw), Hash = Hash(raw) };
        db.ApiKeys.Add(key);
        await db.SaveChangesAsync();
        return (key, raw);
    }

    private static string Base64UrlEncode(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}

/// <summary>Adds the team id to the principal of a signed-in user (cookie or API key).</summary>
public sealed class TeamClaimsPrincipalFactory(UserManager<User> users, RoleManager<IdentityRole<Guid>> roles, IOptions<IdentityOptions> options)
    : UserClaimsPrincipalFactory<User, IdentityRole<Guid>>(users, roles, options)
{
    public const string TeamClaim = "team_id";

    protected override async Task<ClaimsIdentity> GenerateClaimsAsync(User user)
    {
        var identity = await base.GenerateClaimsAsync(user);
        identity.AddClaim(new Claim(TeamClaim, user.TeamId.ToString()));
        return identity;
    }
}

public static class PrincipalExtensions
{
    public static Guid TeamId(this ClaimsPrincipal user) =>
        Guid.TryParse(user.FindFirstValue(TeamClaimsPrincipalFactory.TeamClaim), out var id) ? id : Guid.Empty;

    public static Guid UserId(this ClaimsPrincipal user) =>
        Guid.TryParse(user.FindFirstValue(ClaimTypes.NameIdentifier), out var id) ? id : Guid.Empty;
}
