using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using WebDefense.Server.Auth;
using WebDefense.Server.Data;

namespace WebDefense.Server.Features.Auth;

public sealed record LoginRequest(string Email, string Password);

public sealed record MeResponse(Guid Id, string Email, Guid TeamId, string TeamName, bool Admin);

public static class AuthApi
{
    public static IEndpointRouteBuilder MapAuthApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/auth").WithTags("Auth");
        api.MapPost("/login", LoginAsync).WithSummary("Cookie login with e-mail and password. Repeated failures from one client answer 429 with Retry-After; accounts are never locked.")
            .ProducesProblem(StatusCodes.Status401Unauthorized).ProducesProblem(StatusCodes.Status429TooManyRequests);
        api.MapPost("/logout", async (SignInManager<User> signIn) =>
        {
            await signIn.SignOutAsync();
            return TypedResults.NoContent();
        }).WithSummary("Ends the cookie session.");
        api.MapGet("/me", MeAsync).RequireAuthorization().WithSummary("Who is signed in, and their team.");
        return app;
    }

    private static async Task<Results<Ok<MeResponse>, ProblemHttpResult>> LoginAsync(
        LoginRequest request, HttpContext http, SignInManager<User> signIn, AppDbContext db, LoginThrottle throttle)
    {
        var email = request.Email ?? "";
        var client = http.Connection.RemoteIpAddress;
        if (throttle.RetryAfter(client, email) is { } wait)
        {
            var seconds = (int)Math.Ceiling(wait.TotalSeconds);
            http.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return TypedResults.Problem($"too many failed logins from this client: try again in {seconds} s", statusCode: StatusCodes.Status429TooManyRequests, title: "Too many attempts");
        }

        var user = await signIn.UserManager.FindByEmailAsync(email);
        if (user is null)
        {
            // As long as checking a real password: an unknown e-mail must not answer faster than a known one.
            signIn.UserManager.PasswordHasher.VerifyHashedPassword(new User(), UnknownUserHash.Value, request.Password ?? "");
            throttle.Failed(client, email);
            return TypedResults.Problem("wrong e-mail or password", statusCode: StatusCodes.Status401Unauthorized);
        }

        var result = await signIn.PasswordSignInAsync(user, request.Password ?? "", isPersistent: false, lockoutOnFailure: false);
        if (!result.Succeeded)
        {
            throttle.Failed(client, email);
            return TypedResults.Problem("wrong e-mail or password", statusCode: StatusCodes.Status401Unauthorized);
        }

        throttle.Succeeded(client, email);
        var team = await db.Teams.AsNoTracking().FirstAsync(t => t.Id == user.TeamId);
        return TypedResults.Ok(new MeResponse(user.Id, user.Email!, team.Id, team.Name, await signIn.UserManager.IsInRoleAsync(user, AuthServices.AdminRole)));
    }

    private static readonly Lazy<string> UnknownUserHash = new(() =>
        new PasswordHasher<User>().HashPassword(new User(), Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16))));

    private static async Task<Results<Ok<MeResponse>, UnauthorizedHttpResult>> MeAsync(HttpContext http, UserManager<User> users, AppDbContext db)
    {
        var user = await users.FindByIdAsync(http.User.UserId().ToString());
        if (user is null) return TypedResults.Unauthorized();
        var team = await db.Teams.AsNoTracking().FirstAsync(t => t.Id == user.TeamId);
        return TypedResults.Ok(new MeResponse(user.Id, user.Email!, team.Id, team.Name, http.User.IsInRole(AuthServices.AdminRole)));
    }
}
