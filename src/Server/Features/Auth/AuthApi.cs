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
        api.MapPost("/login", LoginAsync).WithSummary("Cookie login with e-mail and password.");
        api.MapPost("/logout", async (SignInManager<User> signIn) =>
        {
            await signIn.SignOutAsync();
            return TypedResults.NoContent();
        }).WithSummary("Ends the cookie session.");
        api.MapGet("/me", MeAsync).RequireAuthorization().WithSummary("Who is signed in, and their team.");
        return app;
    }

    private static async Task<Results<Ok<MeResponse>, ProblemHttpResult>> LoginAsync(LoginRequest request, SignInManager<User> signIn, AppDbContext db)
    {
        var user = await signIn.UserManager.FindByEmailAsync(request.Email ?? "");
        if (user is null) return TypedResults.Problem("wrong e-mail or password", statusCode: StatusCodes.Status401Unauthorized);
        var result = await signIn.PasswordSignInAsync(user, request.Password ?? "", isPersistent: false, lockoutOnFailure: true);
        if (!result.Succeeded) return TypedResults.Problem("wrong e-mail or password", statusCode: StatusCodes.Status401Unauthorized);
        var team = await db.Teams.AsNoTracking().FirstAsync(t => t.Id == user.TeamId);
        return TypedResults.Ok(new MeResponse(user.Id, user.Email!, team.Id, team.Name, await signIn.UserManager.IsInRoleAsync(user, AuthServices.AdminRole)));
    }

    private static async Task<Results<Ok<MeResponse>, UnauthorizedHttpResult>> MeAsync(HttpContext http, UserManager<User> users, AppDbContext db)
    {
        var user = await users.FindByIdAsync(http.User.UserId().ToString());
        if (user is null) return TypedResults.Unauthorized();
        var team = await db.Teams.AsNoTracking().FirstAsync(t => t.Id == user.TeamId);
        return TypedResults.Ok(new MeResponse(user.Id, user.Email!, team.Id, team.Name, http.User.IsInRole(AuthServices.AdminRole)));
    }
}
