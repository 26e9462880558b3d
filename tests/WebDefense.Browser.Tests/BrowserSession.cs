using Microsoft.Playwright;

namespace WebDefense.Browser.Tests;

/// <summary>
/// Debian's chromium under Playwright (no browser download works here). Launch flags from the machine notes: without
/// the background-networking ones chromium keeps dialling Google's hosts on this closed network.
/// </summary>
public sealed class BrowserSession : IAsyncLifetime
{
    public static string ChromiumPath => Environment.GetEnvironmentVariable("WEBDEFENSE_CHROMIUM") ?? "/usr/bin/chromium";

    private IPlaywright? _playwright;

    public IBrowser Browser { get; private set; } = default!;

    public async Task InitializeAsync()
    {
        if (!File.Exists(ChromiumPath)) throw new FileNotFoundException("chromium is missing: scripts/test.sh installs Debian's chromium package", ChromiumPath);
        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumPath,
            Headless = true,
            Args =
            [
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
            ],
        });
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null) await Browser.DisposeAsync();
        _playwright?.Dispose();
    }
}
