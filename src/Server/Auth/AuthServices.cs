using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Identity;
using WebDefense.Server.Data;
using WebDefense.Server.Hosting;

namespace WebDefense.Server.Auth;

public static class AuthServices
{
    public const string AdminRole = "Admin";
    public const string AdminPolicy = "Admin";
    private const string SelectScheme = "ApiKeyOrCookie";

    /// <summary>Identity users in SQLite, cookie login, X-Api-Key per user; APIs answer 401/403 instead of redirecting.</summary>
    public static WebApplicationBuilder AddAuthServices(this WebApplicationBuilder builder)
    {
        // The login cookie's keys live in the data directory: they survive a rebuild or a new container, and every web
        // process of a PostgreSQL pool (which shares the data directory) reads the same keys. They are stored as plain
        // XML there, as the database beside them holds the password hashes and API key hashes: the data directory is the
        // secret to protect (owner-only permissions, docs/deployment.md), so the framework's "no XML encryptor" warning
        // says nothing an operator can act on and is filtered.
        var data = builder.BoundWebDefenseOptions();
        builder.Services.AddDataProtection().SetApplicationName("WebDefense")
            .PersistKeysToFileSystem(new DirectoryInfo(Path.Combine(data.DataPath, "keys")));
        builder.Logging.AddFilter("Microsoft.AspNetCore.DataProtection.KeyManagement.XmlKeyManager", LogLevel.Error);
        builder.Services.AddSingleton<LoginThrottle>();
        Microsoft.Extensions.DependencyInjection.Extensions.ServiceCollectionDescriptorExtensions.TryAddSingleton(builder.Services, TimeProvider.System);
        builder.Services.AddAuthentication(o =>
            {
                o.DefaultScheme = SelectScheme;
                o.DefaultChallengeScheme = SelectScheme;
            })
            .AddPolicyScheme(SelectScheme, "API key or cookie", o => o.ForwardDefaultSelector = context =>
                context.Request.Headers.ContainsKey(ApiKeyAuthenticationHandler.Header) ? ApiKeyAuthenticationHandler.SchemeName : IdentityConstants.ApplicationScheme)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null)
            .AddIdentityCookies();
        builder.Services.ConfigureApplicationCookie(o =>
        {
            o.Cookie.Name = "webdefense";
            o.Cookie.SameSite = SameSiteMode.Strict;
            o.Cookie.HttpOnly = true;
            o.Events.OnRedirectToLogin = c => { c.Response.StatusCode = StatusCodes.Status401Unauthorized; return Task.CompletedTask; };
            o.Events.OnRedirectToAccessDenied = c => { c.Response.StatusCode = StatusCodes.Status403Forbidden; return Task.CompletedTask; };
        });
        builder.Services.AddIdentityCore<User>(o =>
            {
                o.User.RequireUniqueEmail = true;
                o.Password.RequiredLength = 8;
            })
            .AddRoles<IdentityRole<Guid>>()
            .AddEntityFrameworkStores<AppDbContext>()
            .AddSignInManager()
            .AddClaimsPrincipalFactory<TeamClaimsPrincipalFactory>();
        builder.Services.AddAuthorizationBuilder()
            .SetFallbackPolicy(null)
            .AddPolicy(AdminPolicy, p => p.RequireRole(AdminRole));
        return builder;
    }
}
