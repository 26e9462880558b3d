using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Playwright;

namespace WebDefense.Browser.Tests;

/// <summary>
/// A run without a trigger on the seeded demo: the server scans first, and the run page shows the verdict, the
/// anomaly chart, every label's reconstructed trigger images and the outcome beside the status. (The estimated basis,
/// without a backdoor test set, is the client tests' part: tests/WebDefense.Client.Tests/ScanTests.cs.)
/// </summary>
public sealed class ScanFlowTests(ServerProcess server, BrowserSession browser) : IClassFixture<ServerProcess>, IClassFixture<BrowserSession>
{
    private static readonly string Screenshots = Path.Combine(ServerProcess.RepositoryRoot, "docs", "screenshots");

    /// <summary>The README's example and main screenshot: the demo's backdoor removed with a defense's defaults and no trigger.</summary>
    [Fact]
    public async Task Nc_with_its_defaults_and_no_trigger_removes_the_demo_backdoor()
    {
        var runId = await RunNcOnTheDemoAsync();
        var (context, page, errors) = await OpenRunPageAsync(runId);
        await using var disposeContext = context;

        // Measured on the seeded BadNets test set (the run never saw it), beside the status.
        var outcome = page.Locator("[data-testid=outcome]");
        await Assertions.Expect(outcome).ToHaveAttributeAsync("data-basis", "measured");
        await Assertions.Expect(outcome).ToHaveAttributeAsync("data-outcome", "removed");
        await Assertions.Expect(page.Locator("[data-testid=outcome-summary]")).ToContainTextAsync("Backdoor removed");
        await Assertions.Expect(page.Locator("[data-testid=scan-verdict]")).ToContainTextAsync("Backdoor suspected towards label 0");
        await Assertions.Expect(page.Locator("[data-testid=anomaly-chart] rect")).ToHaveCountAsync(10);
        await Assertions.Expect(page.Locator("[data-testid=scan-labels] tbody tr")).ToHaveCountAsync(10);
        foreach (var what in new[] { "mask", "pattern", "example" })
        {
            // The images load (from the run's scan artifacts, with the session's cookie) at the model's 28×28.
            var image = page.Locator($"[data-testid=trigger-0-{what}]");
            await page.WaitForFunctionAsync("img => img.complete && img.naturalWidth > 0", await image.ElementHandleAsync());
            Assert.Equal(28, await image.EvaluateAsync<int>("img => img.naturalWidth"));
        }

        await Assertions.Expect(page.Locator("[data-testid=download-scan]")).ToBeVisibleAsync();
        await page.WaitForLoadStateAsync(LoadState.NetworkIdle);
        Directory.CreateDirectory(Screenshots);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Screenshots, "demo-nc-run.png"), FullPage = true });
        Assert.Empty(errors);
    }

    private async Task<Guid> RunNcOnTheDemoAsync()
    {
        using var api = server.ApiClient();
        var model = JsonDocument.Parse(await api.GetStringAsync("/api/models")).RootElement[0].GetProperty("id").GetGuid();
        var datasets = JsonDocument.Parse(await api.GetStringAsync("/api/datasets")).RootElement.EnumerateArray().ToList();
        Guid Of(string kind) => datasets.First(d => d.GetProperty("kind").GetString() == kind).GetProperty("id").GetGuid();
        var start = await api.PostAsJsonAsync("/api/runs", new
        {
            // Defaults, no trigger and no triggered images; the seeded BadNets test set only measures the outcome.
            modelId = model, defense = "nc", cleanDatasetId = Of("clean"), testDatasetId = Of("test"),
            backdoorTestDatasetId = Of("backdoor-test"), targetLabel = 0, seed = 1,
        });
        Assert.True(start.IsSuccessStatusCode, await start.Content.ReadAsStringAsync());
        var runId = JsonDocument.Parse(await start.Content.ReadAsStringAsync()).RootElement.GetProperty("runIds")[0].GetGuid();
        var deadline = DateTime.UtcNow.AddMinutes(10);
        JsonElement run;
        do
        {
            await Task.Delay(1000);
            run = JsonDocument.Parse(await api.GetStringAsync($"/api/runs/{runId}")).RootElement.Clone();
        }
        while (run.GetProperty("status").GetString() is "Queued" or "Running" && DateTime.UtcNow < deadline);
        Assert.True(run.GetProperty("status").GetString() == "Succeeded", run.ToString());
        return runId;
    }

    /// <summary>A logged-in page on the run's page at 1280×860, with the page's script errors collected.</summary>
    private async Task<(IBrowserContext Context, IPage Page, List<string> Errors)> OpenRunPageAsync(Guid runId)
    {
        var context = await browser.Browser.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = server.BaseAddress.ToString(), ViewportSize = new ViewportSize { Width = 1280, Height = 860 },
        });
        context.SetDefaultTimeout(30_000);
        var page = await context.NewPageAsync();
        var errors = new List<string>();
        page.PageError += (_, e) => errors.Add(e);
        await page.GotoAsync("login");
        await page.FillAsync("#email", ServerProcess.AdminEmail);
        await page.FillAsync("#password", ServerProcess.AdminPassword);
        await page.ClickAsync("#login");
        await Assertions.Expect(page.Locator("[data-testid=whoami]")).ToContainTextAsync(ServerProcess.AdminEmail);
        await page.GotoAsync($"runs/{runId}");
        return (context, page, errors);
    }
}
