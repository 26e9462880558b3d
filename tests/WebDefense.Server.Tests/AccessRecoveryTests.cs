using System.Net;
using System.Net.Http.Json;
using WebDefense.Server.Hosting;

namespace WebDefense.Server.Tests;

/// <summary>First-start credentials in an owner-only file (not in the log), and the admin command that gets a team back in.</summary>
public class AccessRecoveryTests
{
    [Fact]
    public async Task Generated_first_start_credentials_are_in_an_owner_only_file_and_work()
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory(), settings: new Dictionary<string, string> { ["generated-credentials"] = "" });
        _ = host.CreateClient(); // starts the host: migrations and the first-start bootstrap
        var file = Path.Combine(host.DataDirectory, StartupTasks.CredentialsFile);
        Assert.True(File.Exists(file));
        if (!OperatingSystem.IsWindows()) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        var lines = File.ReadAllLines(file);
        var password = lines.Single(l => l.StartsWith("password: ", StringComparison.Ordinal))["password: ".Length..];
        var key = lines.Single(l => l.StartsWith("API key: ", StringComparison.Ordinal))["API key: ".Length..];
        Assert.Equal(HttpStatusCode.OK, (await host.Client(key).GetAsync("/api/auth/me")).StatusCode);
        var login = await host.CreateClient().PostAsJsonAsync("/api/auth/login", new { email = "admin@webdefense.local", password });
        Assert.True(login.IsSuccessStatusCode, await login.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task The_admin_command_resets_a_password_and_issues_a_key_on_the_data_directory()
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory());
        var anonymous = host.CreateClient();
        var data = new[] { "--WebDefense:DataDirectory", host.DataDirectory };

        var (code, output) = Admin(["reset-password", "admin@webdefense.local", "--password", "Recovered-pass-789!", .. data]);
        Assert.True(code == 0, output);
        Assert.Contains("the account is unlocked", output);
        Assert.False((await anonymous.PostAsJsonAsync("/api/auth/login", new { email = "admin@webdefense.local", password = "Admin-pass-123!" })).IsSuccessStatusCode);
        Assert.True((await anonymous.PostAsJsonAsync("/api/auth/login", new { email = "admin@webdefense.local", password = "Recovered-pass-789!" })).IsSuccessStatusCode);

        (code, output) = Admin(["issue-key", "admin@webdefense.local", "--name", "lost-laptop", .. data]);
        Assert.True(code == 0, output);
        var key = output.Trim().Split(' ')[^1];
        Assert.StartsWith("wd_", key);
        Assert.Equal(HttpStatusCode.OK, (await host.Client(key).GetAsync("/api/auth/me")).StatusCode);

        // A weak password is refused and the account keeps the one it had; a wrong e-mail or directory says what exists.
        (code, output) = Admin(["reset-password", "admin@webdefense.local", "--password", "short", .. data]);
        Assert.Equal(1, code);
        Assert.Contains("refused", output);
        Assert.True((await anonymous.PostAsJsonAsync("/api/auth/login", new { email = "admin@webdefense.local", password = "Recovered-pass-789!" })).IsSuccessStatusCode);
        (code, output) = Admin(["issue-key", "nobody@example.org", .. data]);
        Assert.Equal(1, code);
        Assert.Contains("the users are: admin@webdefense.local", output);
        (code, output) = Admin(["issue-key", "admin@webdefense.local", "--WebDefense:DataDirectory", Path.Combine(host.DataDirectory, "nothing-here")]);
        Assert.Equal(1, code);
        Assert.Contains("no WebDefense database", output);
    }

    private static readonly Lock ConsoleLock = new();

    private static (int Code, string Output) Admin(string[] args)
    {
        lock (ConsoleLock)
        {
            var (stdout, stderr) = (Console.Out, Console.Error);
            using var writer = new StringWriter();
            Console.SetOut(writer);
            Console.SetError(writer);
            try
            {
                return (AdminCommand.Run(args), writer.ToString());
            }
            finally
            {
                Console.SetOut(stdout);
                Console.SetError(stderr);
            }
        }
    }
}
