using System.Diagnostics;
using System.Text;
using WebDefense.Server.Jobs;

namespace WebDefense.Deployment.Tests;

/// <summary>
/// The built service (<c>dotnet WebDefense.Server.dll</c>, as deployed) in its own process, configured by environment
/// variables, listening on 127.0.0.1 and a free port, its output kept for failure messages.
/// </summary>
public sealed class ServiceProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private ServiceProcess(string name, Process process, int port)
    {
        (Name, _process, Port) = (name, process, port);
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public string Name { get; }
    public int Port { get; }
    public int Pid => _process.Id;
    public Uri BaseAddress => new($"http://127.0.0.1:{Port}/");
    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;

    /// <summary>The Hangfire server name and run worker name of this process (host:pid).</summary>
    public string WorkerName => $"{Environment.MachineName}:{Pid}";

    public static ServiceProcess Start(string name, IReadOnlyDictionary<string, string> environment)
    {
        var port = PostgresServer.FreePort();
        var info = new ProcessStartInfo(new ProcessRunExecutor().DotnetHost())
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "WebDefense.Server.dll"));
        foreach (var key in info.Environment.Keys.Where(k => k.StartsWith("WebDefense__", StringComparison.Ordinal) || k.StartsWith("ASPNETCORE_", StringComparison.Ordinal)).ToList())
        {
            info.Environment.Remove(key);
        }

        info.Environment["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}";
        info.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        info.Environment["Logging__LogLevel__Default"] = "Information";
        info.Environment["Logging__LogLevel__Microsoft.AspNetCore"] = "Warning";
        foreach (var (key, value) in environment) info.Environment[key] = value;
        var process = Process.Start(info) ?? throw new InvalidOperationException($"{name} did not start");
        return new ServiceProcess(name, process, port);
    }

    public HttpClient Client(string? apiKey = null)
    {
        var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        if (apiKey is not null) client.DefaultRequestHeaders.Add("X-Api-Key", apiKey);
        return client;
    }

    /// <summary>Waits for /health to answer 200; fails with the process's output when it exits or takes too long.</summary>
    public async Task WaitHealthyAsync(TimeSpan timeout)
    {
        using var client = Client();
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited) throw new InvalidOperationException($"{Name} exited with {_process.ExitCode} before it was healthy:\n{Output()}");
            try
            {
                if ((await client.GetAsync("health")).IsSuccessStatusCode) return;
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(250);
        }

        throw new TimeoutException($"{Name} was not healthy within {timeout}:\n{Output()}");
    }

    /// <summary>Waits for the process to exit by itself (a refused start-up); returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cts.Token);
        _process.WaitForExit(); // flushes the asynchronous output readers
        return _process.ExitCode;
    }

    /// <summary>SIGKILL, as kill -9: no shutdown code runs.</summary>
    public void KillHard() => _process.Kill(entireProcessTree: false);

    public string Output()
    {
        lock (_output) return _output.ToString();
    }

    private void Append(string? line)
    {
        if (line is null) return;
        lock (_output) _output.Append(line).Append('\n');
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException)
        {
        }

        _process.Dispose();
    }
}
