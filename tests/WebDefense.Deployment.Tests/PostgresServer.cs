using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace WebDefense.Deployment.Tests;

/// <summary>
/// A throwaway PostgreSQL cluster from Debian's packages (scripts/test.sh installs <c>postgresql</c>): initdb into a
/// temporary directory, listening on 127.0.0.1 and a free port only, trust authentication, fsync off. PostgreSQL
/// refuses to run as root, so under root the cluster belongs to the package's <c>postgres</c> user (runuser).
/// </summary>
public sealed class PostgresServer : IDisposable
{
    private readonly string _bin;
    private readonly string _root;
    private readonly bool _asPostgresUser;

    private PostgresServer(string bin, string root, bool asPostgresUser, int port)
    {
        (_bin, _root, _asPostgresUser, Port) = (bin, root, asPostgresUser, port);
    }

    public int Port { get; }

    public string ConnectionString => $"Host=127.0.0.1;Port={Port};Username=webdefense;Database=webdefense;Pooling=true";

    public static async Task<PostgresServer> StartAsync()
    {
        var bin = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin"))
                .Where(b => File.Exists(Path.Combine(b, "initdb")) && File.Exists(Path.Combine(b, "pg_ctl")))
                .OrderByDescending(b => b, StringComparer.Ordinal).FirstOrDefault()
            : null;
        if (bin is null)
        {
            throw new InvalidOperationException("PostgreSQL's server binaries are missing (/usr/lib/postgresql/*/bin): apt-get install postgresql (scripts/test.sh does)");
        }

        var asPostgresUser = Environment.UserName == "root";
        var root = Directory.CreateTempSubdirectory("wd-postgres-").FullName;
        if (asPostgresUser)
        {
            await RunAsync("chown", ["postgres:postgres", root]);
        }

        var server = new PostgresServer(bin, root, asPostgresUser, FreePort());
        try
        {
            var data = Path.Combine(root, "data");
            await server.PgAsync("initdb", ["-D", data, "-U", "webdefense", "--auth=trust", "-E", "UTF8", "--no-sync"]);
            await server.PgAsync("pg_ctl", ["-D", data, "-l", Path.Combine(root, "server.log"), "-w", "-t", "60", "start",
                "-o", $"-p {server.Port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"]);
            await using var connection = new NpgsqlConnection($"Host=127.0.0.1;Port={server.Port};Username=webdefense;Database=postgres;Pooling=false");
            await connection.OpenAsync();
            await using var create = new NpgsqlCommand("CREATE DATABASE webdefense", connection);
            await create.ExecuteNonQueryAsync();
            return server;
        }
        catch
        {
            server.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        try
        {
            PgAsync("pg_ctl", ["-D", Path.Combine(_root, "data"), "-m", "immediate", "-w", "stop"]).GetAwaiter().GetResult();
        }
        catch (InvalidOperationException)
        {
            // Never started, or already stopped.
        }

        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private Task PgAsync(string tool, string[] args)
    {
        var program = Path.Combine(_bin, tool);
        return _asPostgresUser ? RunAsync("runuser", ["-u", "postgres", "--", program, .. args]) : RunAsync(program, args);
    }

    private static async Task RunAsync(string program, string[] args)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) info.ArgumentList.Add(a);
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"{program} did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{program} {string.Join(' ', args)} exited with {process.ExitCode}: {await stderr}{await stdout}");
        }
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
