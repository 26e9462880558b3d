using System.Net.Http.Json;
using System.Text.Json;
using Deque.AxeCore.Commons;
using Deque.AxeCore.Playwright;
using Microsoft.Playwright;
using Xunit.Abstractions;

namespace WebDefense.Browser.Tests;

/// <summary>
/// axe-core (Deque.AxeCore.Playwright) on every page of the dashboard, at a desktop width and a phone width, with a
/// finished run on the demo model: no serious or critical violation. Screenshots at phone width go to
/// docs/screenshots/phone-*.png.
/// </summary>
public sealed class AccessibilityTests(ServerProcess server, BrowserSession browser, ITestOutputHelper output) : IClassFixture<ServerProcess>, IClassFixture<BrowserSession>
{
    [Fact]
    public async Task Every_page_has_no_serious_or_critical_axe_violation_at_1280_and_390_px()
    {
        var runId = await FinishedRunAsync();
        var pages = new[] { "", "new", $"runs/{runId}", "history", $"compare?ids={runId}", "admin" };
        var problems = new List<string>();
        foreach (var (width, height) in new[] { (1280, 860), (390, 844) })
        {
            await using var context = await browser.Browser.NewContextAsync(new BrowserNewContextOptions
            {
                BaseURL = server.BaseAddress.ToString(), ViewportSize = new ViewportSize { Width = width, Height = height },
            });
            context.SetDefaultTimeout(30_000);
            var page = await context.NewPageAsync();
            await page.GotoAsync("login");
            await page.FillAsync("#email", ServerProcess.AdminEmail);
            await page.FillAsync("#password", ServerProcess.AdminPassword);
            await page.ClickAsync("#login");
            await page.WaitForURLAsync(url => !url.Contains("/login", StringComparison.Ordinal));
            foreach (var path in pages)
            {
                await page.GotoAsync(path);
                await Assertions.Expect(page.Locator("main#main > h1")).ToHaveCountAsync(1, new() { Timeout = 30_000 });
                Assert.DoesNotContain("/login", page.Url, StringComparison.Ordinal); // the page itself, not the login form
                await page.WaitForLoadStateAsync(LoadState.NetworkIdle);
                await page.WaitForTimeoutAsync(500); // the page's data has arrived; let it render
                var result = await page.RunAxe(new AxeRunOptions { ResultTypes = [ResultType.Violations] });
                foreach (var v in result.Violations.Where(v => v.Impact is "serious" or "critical"))
                {
                    problems.Add($"{width} px /{path}: {v.Id} ({v.Impact}) {v.Help}: {string.Join(" ; ", v.Nodes.Take(4).Select(n => string.Join(" ", n.Target)))}");
                }

                if (width < 600)
                {
                    var name = path.Length == 0 ? "home" : path.Split('/', '?')[0];
                    await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(ServerProcess.RepositoryRoot, "docs", "screenshots", $"phone-{name}.png"), FullPage = true });
                }
            }
        }

        foreach (var p in problems) output.WriteLine(p);
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    /// <summary>A one-epoch FT run on the seeded demo model and data, finished.</summary>
    private async Task<Guid> FinishedRunAsync()
    {
        using var api = server.ApiClient();
        var model = (await api.GetFromJsonAsync<JsonElement>("api/models")).EnumerateArray().First().GetProperty("id").GetGuid();
        var sets = (await api.GetFromJsonAsync<JsonElement>("api/datasets")).EnumerateArray().ToList();
        Guid Set(string kind) => sets.First(d => d.GetProperty("kind").GetString() == kind).GetProperty("id").GetGuid();
        var started = await api.PostAsJsonAsync("api/runs", new
        {
            modelId = model, defense = "ft", cleanDatasetId = Set("clean"), testDatasetId = Set("test"), backdoorTestDatasetId = Set("backdoor-test"),
            targetLabel = 0, seed = 1, parameters = new Dictionary<string, object> { ["epochs"] = 1, ["scan"] = false },
        });
        var id = (await started.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("runIds")[0].GetGuid();
        for (var i = 0; i < 600; i++)
        {
            var status = (await api.GetFromJsonAsync<JsonElement>($"api/runs/{id}")).GetProperty("status").GetString();
            if (status == "Succeeded") return id;
            Assert.True(status is "Queued" or "Running", $"the run ended {status}");
            await Task.Delay(500);
        }

        throw new TimeoutException("the run did not finish in 5 minutes");
    }
}
