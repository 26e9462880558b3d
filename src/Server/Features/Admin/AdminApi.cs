using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using WebDefense.Server.Auth;
using WebDefense.Server.Data;

namespace WebDefense.Server.Features.Admin;

public sealed record CreateTeamRequest(string Name);
public sealed record TeamResponse(Guid Id, string Name, DateTimeOffset CreatedAt);
public sealed record CreateUserRequest(string Email, string Password, Guid TeamId, bool Admin = false);
public sealed record UserResponse(Guid Id, string Email, Guid TeamId, bool Admin);
public sealed record CreateKeyRequest(string? Name);

/// <summary>The raw key appears only in this response.</summary>
public sealed record CreatedKeyResponse(Guid Id, Guid UserId, string Name, string Prefix, string Key);
public sealed record KeyResponse(Guid Id, Guid UserId, string Name, string Prefix, DateTimeOffset CreatedAt, DateTimeOffset? RevokedAt);

public static class AdminApi
{
    public static IEndpointRouteBuilder MapAdminApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/admin").WithTags("Admin").RequireAuthorization(AuthServices.AdminPolicy);

        api.MapGet("/teams", async (AppDbContext db) =>
            TypedResults.Ok(await db.Teams.AsNoTracking().OrderBy(t => t.Name).Select(t => new TeamResponse(t.Id, t.Name, t.CreatedAt)).ToArrayAsync()))
            .WithSummary("Every team.");
        api.MapPost("/teams", CreateTeamAsync).WithSummary("Create a team.");
        api.MapGet("/teams/{teamId:guid}", async Task<Results<Ok<TeamResponse>, NotFound>> (Guid teamId, AppDbContext db) =>
                await db.Teams.AsNoTracking().Where(t => t.Id == teamId).Select(t => new TeamResponse(t.Id, t.Name, t.CreatedAt)).FirstOrDefaultAsync() is { } team
                    ? TypedResults.Ok(team) : TypedResults.NotFound())
            .WithSummary("One team (the Location of a created team).");
        api.MapGet("/users", async (AppDbContext db) =>
        {
            var admins = await AdminIds(db).ToListAsync();
            var users = await db.Users.AsNoTracking().OrderBy(u => u.Email).ToListAsync();
            return TypedResults.Ok(users.Select(u => new UserResponse(u.Id, u.Email!, u.TeamId, admins.Contains(u.Id))).ToArray());
        }).WithSummary("Every user.");
        api.MapPost("/users", CreateUserAsync).WithSummary("Create a user in a team (optionally an admin).");
        api.MapGet("/users/{userId:guid}", async Task<Results<Ok<UserResponse>, NotFound>> (Guid userId, AppDbContext db) =>
            {
                var user = await db.Users.AsNoTracking().FirstOrDefaultAsync(u => u.Id == userId);
                if (user is null) return TypedResults.NotFound();
                return TypedResults.Ok(new UserResponse(user.Id, user.Email!, user.TeamId, await AdminIds(db).ContainsAsync(userId)));
            })
            .WithSummary("One user (the Location of a created user).");
        api.MapPost("/users/{userId:guid}/keys", CreateKeyAsync).WithSummary("Create an API key for a user; the raw key is returned once.");
        api.MapGet("/users/{userId:guid}/keys", async (Guid userId, AppDbContext db) =>
            TypedResults.Ok(await db.ApiKeys.AsNoTracking().Where(k => k.UserId == userId)
                .Select(k => new KeyResponse(k.Id, k.UserId, k.Name, k.Prefix, k.CreatedAt, k.RevokedAt)).ToArrayAsync()))
            .WithSummary("A user's API keys (prefixes only).");
        api.MapDelete("/keys/{keyId:guid}", async Task<Results<NoContent, NotFound>> (Guid keyId, AppDbContext db) =>
        {
            var now = DateTimeOffset.UtcNow;
            var n = await db.ApiKeys.Where(k => k.Id == keyId).ExecuteUpdateAsync(s => s.SetProperty(k => k.RevokedAt, now));
            return n == 0 ? TypedResults.NotFound() : TypedResults.NoContent();
        }).WithSummary("Revoke an API key.");
        return app;
    }

    private static async Task<Results<Created<TeamResponse>, ValidationProblem, ProblemHttpResult>> CreateTeamAsync(CreateTeamRequest request, AppDbContext db)
    {
        var name = request.Name?.Trim() ?? "";
        if (name.Length is < 1 or > 100) return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["name"] = ["1 to 100 characters"] });
        if (await db.Teams.AnyAsync(t => t.Name == name)) return TypedResults.Problem("a team of that name exists", statusCode: StatusCodes.Status409Conflict);
        var team = new Team { Name = name };
        db.Teams.Add(team);
        await db.SaveChangesAsync();
        return TypedResults.Created($"/api/admin/teams/{team.Id}", new TeamResponse(team.Id, team.Name, team.CreatedAt));
    }

    private static async Task<Results<Created<UserResponse>, ValidationProblem>> CreateUserAsync(CreateUserRequest request, AppDbContext db, UserManager<User> users)
    {
        if (!await db.Teams.AnyAsync(t => t.Id == request.TeamId)) return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["teamId"] = ["no such team"] });
        var user = new User { UserName = request.Email, Email = request.Email, EmailConfirmed = true, TeamId = request.TeamId };
        var result = await users.CreateAsync(user, request.Password ?? "");
        if (!result.Succeeded)
        {
            return TypedResults.ValidationProblem(result.Errors.GroupBy(e => e.Code.Contains("Password") ? "password" : "email")
                .ToDictionary(g => g.Key, g => g.Select(e => e.Description).ToArray()));
        }

        if (request.Admin) await users.AddToRoleAsync(user, AuthServices.AdminRole);
        return TypedResults.Created($"/api/admin/users/{user.Id}", new UserResponse(user.Id, user.Email!, user.TeamId, request.Admin));
    }

    private static async Task<Results<Created<CreatedKeyResponse>, NotFound>> CreateKeyAsync(Guid userId, CreateKeyRequest? request, AppDbContext db)
    {
        if (!await db.Users.AnyAsync(u => u.Id == userId)) return TypedResults.NotFound();
        var (key, raw) = await ApiKeys.CreateAsync(db, userId, request?.Name ?? "api");
        return TypedResults.Created($"/api/admin/users/{userId}/keys", new CreatedKeyResponse(key.Id, userId, key.Name, key.Prefix, raw));
    }

    /// <summary>The ids of the users in the admin role.</summary>
    private static IQueryable<Guid> AdminIds(AppDbContext db) =>
        db.UserRoles.Where(ur => db.Roles.Any(r => r.Id == ur.RoleId && r.Name == AuthServices.AdminRole)).Select(ur => ur.UserId);
}
