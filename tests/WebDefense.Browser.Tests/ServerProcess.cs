using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace WebDefense.Browser.Tests;

/// <summary>
/// The service as users start it: WebDefense.Server.dll from src/Server's build output, on a free loopback port,
/// with a fresh data directory, the demo seeded, and a known admin password and API key.
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
        // bin/<Configuration>/net10.0 of this project → the same configuration of the server.
        var configuration = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name;
        var serverDll = Path.Combine(RepositoryRoot, "src", "Server", "bin", configuration, "net10.0", "WebDefense.Server.dll");
        if (!File.Exists(serverDll)) throw new FileNotFoundException("build the solution first", serverDll);

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
