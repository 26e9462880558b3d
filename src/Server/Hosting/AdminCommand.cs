using System.Security.Cryptography;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using WebDefense.Server.Auth;
using WebDefense.Server.Data;

namespace WebDefense.Server.Hosting;

/// <summary>
/// The way back in when a password or key is lost, run on the server's machine against its data directory (whoever
/// can read that directory owns the service anyway): <c>admin reset-password EMAIL [--password P]</c> sets a new password
/// (generated and printed when none is given) and ends the lockout; <c>admin issue-key EMAIL [--name N]</c> prints a new
/// API key. Configuration (data directory, storage, connection string) is read as the server reads it.
/// </summary>
public static class AdminCommand
{
    public const string Usage = """
        usage: WebDefense.Server admin reset-password EMAIL [--password P]
               WebDefense.Server admin issue-key EMAIL [--name NAME]
        (plus the server's own settings, e.g. --WebDefense:DataDirectory /srv/webdefense/data)
        """;

    public static int Run(string[] args)
    {
        if (args is not [var verb, var email, ..] || verb is not ("reset-password" or "issue-key") || email.StartsWith("--", StringComparison.Ordinal))
        {
            Console.Error.WriteLine(Usage);
            return 2;
        }

        var rest = args[2..];
        string? Option(string name) => Array.IndexOf(rest, name) is var i and >= 0 && i + 1 < rest.Length ? rest[i + 1] : null;
        // The server's own settings (--WebDefense:DataDirectory …) are read from the same arguments; --password and --name are ignored there.
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = rest, ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.AddWebDefenseOptions();
        builder.AddDataServices();
        builder.AddAuthServices();
        using var app = builder.Build();
        var options = app.Services.GetRequiredService<IOptions<WebDefenseOptions>>().Value;
        if (options.Storage == StorageKind.Sqlite && !File.Exists(Path.Combine(options.DataPath, "webdefense.db")))
        {
            Console.Error.WriteLine($"no WebDefense database in {options.DataPath}: give the server's data directory with --WebDefense:DataDirectory PATH");
            return 1;
        }

        return RunAsync(app.Services, verb, email, Option("--password"), Option("--name") ?? "recovery").GetAwaiter().GetResult();
    }

    private static async Task<int> RunAsync(IServiceProvider services, string verb, string email, string? password, string keyName)
    {
        using var scope = services.CreateScope();
        var users = scope.ServiceProvider.GetRequiredService<UserManager<User>>();
        var user = await users.FindByEmailAsync(email);
        if (user is null)
        {
            var known = await scope.ServiceProvider.GetRequiredService<AppDbContext>().Users.Select(u => u.Email).OrderBy(e => e).ToListAsync();
            Console.Error.WriteLine($"no user {email}; the users are: {string.Join(", ", known)}");
            return 1;
        }

        if (verb == "issue-key")
        {
            var (_, raw) = await ApiKeys.CreateAsync(scope.ServiceProvider.GetRequiredService<AppDbContext>(), user.Id, keyName);
            Console.WriteLine($"API key for {email} (\"{keyName}\"), shown once: {raw}");
            return 0;
        }

        password ??= GeneratePassword();
        // Checked before the old password is removed, so a refused one leaves the account as it was.
        foreach (var validator in users.PasswordValidators)
        {
            if (await validator.ValidateAsync(users, user, password) is { Succeeded: false } refused)
            {
                Console.Error.WriteLine("the password was refused: " + string.Join("; ", refused.Errors.Select(e => e.Description)));
                return 1;
            }
        }

        await users.RemovePasswordAsync(user);
        var added = await users.AddPasswordAsync(user, password);
        if (!added.Succeeded)
        {
            Console.Error.WriteLine("setting the password failed: " + string.Join("; ", added.Errors.Select(e => e.Description)));
            return 1;
        }

        await users.SetLockoutEndDateAsync(user, null);
        await users.ResetAccessFailedCountAsync(user);
        Console.WriteLine($"password of {email} reset; the account is unlocked. New password, shown once: {password}");
        return 0;
    }

    public static string GeneratePassword() =>
        "Wd-" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(12)).Replace('/', 'x').Replace('+', 'y') + "7a!";
}
