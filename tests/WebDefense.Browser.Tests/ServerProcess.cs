using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace WebDefense.Browser.Tests;

/// <summary>
/// The service as it ships: src/Server published (as scripts/run.sh and the Dockerfile do: trimmed, precompressed,
/// fingerprinted dashboard) once per test run from the solution's build, then WebDefense.Server.dll from that folder on
/// a free loopback port, with a fresh data directory, the demo seeded, and a known admin password and API key. A broken
/// publish fails every browser test.
/// </summary>
public sealed class ServerProcess : IAsyncLifetime
{
    public const string AdminEmail = "admin@webdefense.local";
    public const string AdminPassword = "Browser-test-pass-1";
    public const string AdminKey = "wd_browser_test_key_0123456789abcdef";

    private readonly StringBuilder _output = new();
    private Process? _process;

    public string DataDirectory { get; } = Path.Combine(Path.GetTempPath(), "wd-browser-tests", Guid.NewGuid().ToString("N"));

    public Uri BaseAddress { get; private set; } = new("http://127.0.0.1/");

    public string Output
    {
        get
        {
            lock (_output) return _output.ToString();
        }
    }

    public static string RepositoryRoot
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "WebDefense.sln"))) dir = dir.Parent;
            return dir?.FullName ?? throw new InvalidOperationException("WebDefense.sln not found above " + AppContext.BaseDirectory);
        }
    }

    public async Task InitializeAsync()
    {
        var serverDll = Path.Combine(await Published.Value, "WebDefense.Server.dll");

        var port = FreePort();
        BaseAddress = new Uri($"http://127.0.0.1:{port}/");
        Directory.CreateDirectory(DataDirectory);
        var start = new ProcessStartInfo("dotnet", [serverDll, "--urls", BaseAddress.ToString().TrimEnd('/')])
        {
            WorkingDirectory = Path.GetDirectoryName(serverDll)!,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["WebDefense__DataDirectory"] = DataDirectory;
        start.Environment["WebDefense__Bootstrap__AdminEmail"] = AdminEmail;
        start.Environment["WebDefense__Bootstrap__AdminPassword"] = AdminPassword;
        start.Environment["WebDefense__Bootstrap__AdminApiKey"] = AdminKey;
        start.Environment["WebDefense__TorchThreads"] = "2";
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        _process = Process.Start(start) ?? throw new InvalidOperationException("could not start the server");
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();

        using var http = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow.AddMinutes(3);
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited) throw new InvalidOperationException($"the server exited ({_process.ExitCode}):\n{Output}");
            try
            {
                // Ready once the demo is seeded: its data sets are listed.
                using var request = new HttpRequestMessage(HttpMethod.Get, "api/datasets");
                request.Headers.Add("X-Api-Key", AdminKey);
                using var response = await http.SendAsync(request);
                if (response.IsSuccessStatusCode && (await response.Content.ReadAsStringAsync()).Contains("backdoor-test", StringComparison.Ordinal)) return;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
            }

            await Task.Delay(500);
        }

        throw new TimeoutException($"the server did not become ready:\n{Output}");
    }

    /// <summary>The published server's folder, made on first use and shared by every test class of this run.</summary>
    public static readonly Lazy<Task<string>> Published = new(PublishAsync);

    private static async Task<string> PublishAsync()
    {
        // bin/<Configuration>/net10.0 of this project → the same configuration of the server, already built (the project
        // reference builds it first), so the publish only trims, compresses and copies.
        var configuration = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name;
        var output = Path.Combine(AppContext.BaseDirectory, "published-server");
        var webRoot = Path.Combine(output, "wwwroot");
        if (Directory.Exists(webRoot)) Directory.Delete(webRoot, recursive: true);   // only this build's files are served
        var project = Path.Combine(RepositoryRoot, "src", "Server", "WebDefense.Server.csproj");
        var start = new ProcessStartInfo("dotnet", ["publish", project, "-c", configuration, "--no-build", "-o", output, "-nologo"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var publish = Process.Start(start) ?? throw new InvalidOperationException("could not start dotnet publish");
        var stdout = publish.StandardOutput.ReadToEndAsync();
        var stderr = publish.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(10));
        await publish.WaitForExitAsync(timeout.Token);
        if (publish.ExitCode != 0) throw new InvalidOperationException($"dotnet publish failed ({publish.ExitCode}):\n{await stdout}\n{await stderr}");

        // The SDK leaves "#[.{fingerprint}]" in index.html when it does not rewrite it for publish: the app then never loads.
        var index = await File.ReadAllTextAsync(Path.Combine(webRoot, "index.html"));
        if (index.Contains("#[", StringComparison.Ordinal)) throw new InvalidOperationException($"the published index.html kept its asset placeholders:\n{index}");
        return output;
    }

    public HttpClient ApiClient()
    {
        var http = new HttpClient { BaseAddress = BaseAddress };
        http.DefaultRequestHeaders.Add("X-Api-Key", AdminKey);
        return http;
    }

    public async Task DisposeAsync()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process?.Dispose();
        try
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private void Append(string? line)
    {
        if (line is null) return;
        lock (_output) _output.AppendLine(line);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
