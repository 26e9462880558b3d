using Microsoft.Playwright;
using Xunit.Abstractions;

[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace WebDefense.Browser.Tests;

/// <summary>
/// The dashboard end to end, in a real browser against the real server: log in, upload the demo model and a clean
/// set, design a trigger, start RNP, follow its live progress to 100%, read the result cards and the trajectory
/// chart, download the purified model; then History, Compare and Admin. Screenshots of every page go to
/// docs/screenshots/ (the README shows one).
/// </summary>
public sealed class DashboardFlowTests(ServerProcess server, BrowserSession browser, ITestOutputHelper output) : IClassFixture<ServerProcess>, IClassFixture<BrowserSession>
{
    private static readonly string Screenshots = Path.Combine(ServerProcess.RepositoryRoot, "docs", "screenshots");

    [Fact]
    public async Task A_user_purifies_the_demo_model_from_upload_to_download()
    {
        await using var context = await NewContextAsync();
        var page = await context.NewPageAsync();
        var errors = new List<string>();
        page.PageError += (_, e) => errors.Add(e);

        // Log in: a wrong password is refused on the page, the right one lands on Home.
        await page.GotoAsync("/");
        await page.WaitForURLAsync("**/login**");
        await page.FillAsync("#email", ServerProcess.AdminEmail);
        await page.FillAsync("#password", "not-the-password");
        await page.ClickAsync("#login");
        await Assertions.Expect(page.Locator("[data-testid=login-error]")).ToContainTextAsync("wrong e-mail or password");
        await Shot(page, "login");
        await page.FillAsync("#password", ServerProcess.AdminPassword);
        await page.ClickAsync("#login");
        await Assertions.Expect(page.Locator("[data-testid=whoami]")).ToContainTextAsync(ServerProcess.AdminEmail);
        await Assertions.Expect(page.Locator("[data-testid=tile-Workers] .mud-typography-h5")).ToHaveTextAsync("1");

        // New defense, step 1: upload the demo model and see what the server detected.
        await page.ClickAsync("a[href='/new']");
        await page.SetInputFilesAsync("[data-testid=model-upload] input[type=file]", Path.Combine(ServerProcess.RepositoryRoot, "demo", "fmnist-smallcnn-badnets.pt"));
        await page.ClickAsync("[data-testid=upload-model]");
        await Assertions.Expect(page.Locator("[data-testid=model-format]")).ToHaveTextAsync("PyTorchStateDict");
        await Assertions.Expect(page.Locator("[data-testid=model-detected]")).ToContainTextAsync("24,058");
        await Shot(page, "new-model");
        await page.ClickAsync("button:has-text('Next')");

        // Step 2: upload a clean set (chosen automatically), keep the seeded test sets, design a trigger and preview it.
        var clean = FashionMnistSample.WriteCleanSet(server.DataDirectory, perClass: 20);
        await page.SetInputFilesAsync("[data-testid=dataset-upload-clean] input[type=file]", clean);
        await Assertions.Expect(page.Locator("[data-testid=dataset-clean]")).ToContainTextAsync("200 images");
        await page.ClickAsync("[data-testid=use-trigger]");
        // An uploaded model's attack target is its owner's to say: the field starts empty (the demo's 0 is not assumed).
        await Assertions.Expect(page.Locator("[data-testid=target-label] input").First).ToHaveValueAsync("");
        await page.FillAsync("[data-testid=target-label] input >> nth=0", "0");
        var preview = page.Locator("[data-testid=trigger-preview]");
        await Assertions.Expect(preview).ToBeVisibleAsync();
        await page.WaitForFunctionAsync("img => img.complete && img.naturalWidth > 0", await preview.ElementHandleAsync());
        Assert.Equal(28 * 6, await preview.EvaluateAsync<int>("img => img.naturalWidth"));
        await Shot(page, "new-data");
        await page.ClickAsync("button:has-text('Next')");

        // Step 3: RNP with a parameter form generated from its schema; out-of-range values are marked next to the field.
        await page.ClickAsync("[data-testid=defense-select]");
        await page.ClickAsync(".mud-popover-open .mud-list-item:has-text('RNP')");
        await Assertions.Expect(page.Locator("[data-testid=defense-description]")).ToContainTextAsync("unlearn", new() { IgnoreCase = true });
        await page.FillAsync("[data-param=unlearning_epochs] input", "0");
        await Assertions.Expect(page.Locator("[data-param=unlearning_epochs]")).ToContainTextAsync("must be at least");
        // Next does not get past an invalid field.
        await page.ClickAsync("[data-testid=step-next]");
        await Assertions.Expect(page.Locator(".mud-step.active")).ToContainTextAsync("Defense");
        await Assertions.Expect(page.Locator("[data-param=unlearning_epochs]")).ToContainTextAsync("must be at least");
        await page.FillAsync("[data-param=unlearning_epochs] input", "2");
        await page.FillAsync("[data-param=recovering_epochs] input", "2");
        await Assertions.Expect(page.Locator("[data-param=unlearning_epochs]")).Not.ToContainTextAsync("must be at least");
        await page.EvaluateAsync("() => window.scrollTo(0, 0)");   // clicking Next scrolled down
        await Shot(page, "new-defense");
        await page.ClickAsync("button:has-text('Next')");

        // Step 4: start, the one button there that does something; the run page follows the live events until the run is done.
        await Assertions.Expect(page.Locator("[data-testid=review]")).ToContainTextAsync("unlearning_epochs");
        await Assertions.Expect(page.Locator("[data-testid=stepper] button", new() { HasTextRegex = new System.Text.RegularExpressions.Regex("complete|next", System.Text.RegularExpressions.RegexOptions.IgnoreCase) })).ToHaveCountAsync(0);
        await page.ClickAsync("[data-testid=start-run]");
        await page.WaitForURLAsync("**/runs/**");
        var runId = Guid.Parse(page.Url.Split('/')[^1]);
        await Assertions.Expect(page.Locator("[data-testid=steps]")).ToContainTextAsync("recover masks");
        await Assertions.Expect(page.Locator("[data-testid=progress]")).ToHaveAttributeAsync("data-progress", "100", new() { Timeout = 300_000 });
        await Assertions.Expect(page.Locator("[data-testid=status]")).ToHaveTextAsync("Succeeded", new() { Timeout = 60_000 });

        // Result cards (the demo model is 87.04% / 99.58% before), the chart with its chosen point, RNP's detection.
        await Assertions.Expect(page.Locator("[data-testid=card-ACC] [data-testid=before]")).ToHaveTextAsync("87.04%");
        await Assertions.Expect(page.Locator("[data-testid=card-ASR] [data-testid=before]")).ToHaveTextAsync("99.58%");
        await Assertions.Expect(page.Locator("[data-testid=card-ASR] [data-testid=after]")).ToHaveTextAsync(new System.Text.RegularExpressions.Regex(@"^\d+\.\d\d%$"));
        var chart = page.Locator("[data-testid=trajectory-chart]");
        await Assertions.Expect(chart.Locator("polyline").First).ToBeVisibleAsync();
        await Assertions.Expect(chart.Locator("g.marker")).ToHaveCountAsync(1);
        await Assertions.Expect(page.Locator("[data-testid=chosen-rule]")).ToContainTextAsync("validation ACC");
        await Assertions.Expect(page.Locator("[data-testid=detected-label]")).ToContainTextAsync("predicts class");
        await Shot(page, "run");

        // Download the purified model: the same bytes the API serves.
        var download = await page.RunAndWaitForDownloadAsync(() => page.ClickAsync("[data-testid=download-model]"));
        var saved = Path.Combine(server.DataDirectory, "downloaded.pt");
        await download.SaveAsAsync(saved);
        using var api = server.ApiClient();
        Assert.Equal(await api.GetByteArrayAsync($"api/runs/{runId}/artifacts/model"), await File.ReadAllBytesAsync(saved));
        Assert.True(new FileInfo(saved).Length > 50_000);

        // History: the run is listed with its before → after columns; select it and compare.
        await page.ClickAsync("a[href='/history']");
        var row = page.Locator("[data-testid=history-grid] tbody tr", new() { HasText = "rnp" }).First;
        await Assertions.Expect(row).ToContainTextAsync("87.04% →");
        // At 1280 px (with the menu open) the ACC and ASR columns are in view without scrolling the grid sideways.
        var grid = await page.Locator("[data-testid=history-grid] .mud-table-container").BoundingBoxAsync();
        var asr = await page.Locator("[data-testid=history-grid] th", new() { HasText = "ASR before" }).BoundingBoxAsync();
        Assert.True(asr!.X + asr.Width <= grid!.X + grid.Width, $"the ASR column ends at {asr.X + asr.Width} px, the grid at {grid.X + grid.Width} px");
        await Shot(page, "history");
        await row.Locator("input[type=checkbox]").CheckAsync();
        await page.ClickAsync("[data-testid=compare-selected]");
        await page.WaitForURLAsync("**/compare?ids=**");
        await Assertions.Expect(page.Locator("[data-testid=compare-scatter] circle")).ToHaveCountAsync(2); // after, and the model before
        await Assertions.Expect(page.Locator("[data-testid=compare-table]")).ToContainTextAsync("recovering_epochs");
        await Shot(page, "compare");

        // Home lists it; Admin shows the users and keys.
        await page.ClickAsync("a[href='/']");
        await Assertions.Expect(page.Locator("[data-testid=recent-runs]")).ToContainTextAsync("rnp");
        await Shot(page, "home");
        await page.ClickAsync("a[href='/admin']");
        await Assertions.Expect(page.Locator("[data-testid=users]")).ToContainTextAsync(ServerProcess.AdminEmail);
        await Shot(page, "admin");

        // Tablet width: no page scrolls sideways.
        await page.SetViewportSizeAsync(820, 1180);
        foreach (var path in new[] { "/", "new", $"runs/{runId}", "history", $"compare?ids={runId}", "admin" })
        {
            await page.GotoAsync(path);
            await page.WaitForSelectorAsync("[data-testid=whoami]", new() { State = WaitForSelectorState.Attached });
            await page.WaitForLoadStateAsync(LoadState.NetworkIdle);
            var overflow = await page.EvaluateAsync<int>("() => document.documentElement.scrollWidth - window.innerWidth");
            Assert.True(overflow <= 1, $"{path} is {overflow}px wider than a tablet");
        }

        await page.GotoAsync($"runs/{runId}");
        await Assertions.Expect(page.Locator("[data-testid=status]")).ToHaveTextAsync("Succeeded");
        await Shot(page, "run-tablet");
        Assert.Empty(errors);
    }

    [Fact]
    public async Task A_user_trains_a_robust_model_from_the_demo_poisoned_set_and_reads_its_stages()
    {
        await using var context = await NewContextAsync();
        var page = await context.NewPageAsync();
        var errors = new List<string>();
        page.PageError += (_, e) => errors.Add(e);
        await page.GotoAsync("login");
        await page.FillAsync("#email", ServerProcess.AdminEmail);
        await page.FillAsync("#password", ServerProcess.AdminPassword);
        await page.ClickAsync("#login");
        await Assertions.Expect(page.Locator("[data-testid=whoami]")).ToContainTextAsync(ServerProcess.AdminEmail);

        // The training flow: the seeded poisoned training set and the small CNN are pre-selected for 28×28 grey images.
        await page.ClickAsync("a[href='/new']");
        await page.ClickAsync("[data-testid=goal-train]");
        await Assertions.Expect(page.Locator("[data-testid=architecture]")).ToContainTextAsync("smallcnn");
        await page.ClickAsync("button:has-text('Next')");
        await page.ClickAsync("button:has-text('Next')"); // the seeded test and backdoor test sets, target 0
        await page.ClickAsync("[data-testid=defense-select]");
        await Assertions.Expect(page.Locator(".mud-popover-open .mud-list-item")).ToHaveCountAsync(1); // training-time defenses only
        await page.ClickAsync(".mud-popover-open .mud-list-item:has-text('AdvrBD')");
        foreach (var (name, value) in new[] { ("warmup_epochs", "1"), ("iterations", "1"), ("pgd_steps", "1"), ("epochs", "1"), ("unlearn_max_epochs", "1") })
        {
            await page.FillAsync($"[data-param={name}] input", value);
        }

        await page.ClickAsync("button:has-text('Next')");
        await Assertions.Expect(page.Locator("[data-testid=review]")).ToContainTextAsync("warmup_epochs");
        await page.ClickAsync("[data-testid=start-run]");
        await page.WaitForURLAsync("**/runs/**");
        var runId = Guid.Parse(page.Url.Split('/')[^1]);
        await Assertions.Expect(page.Locator("[data-testid=steps]")).ToContainTextAsync("backdoor enhancement");
        await Assertions.Expect(page.Locator("[data-testid=status]")).ToHaveTextAsync("Succeeded", new() { Timeout = 300_000 });

        // Detection against the seeded truth (10% of 5,000), the undefended → trained cards, the stage charts.
        using var api = server.ApiClient();
        var run = System.Text.Json.JsonDocument.Parse(await api.GetStringAsync($"api/runs/{runId}")).RootElement;
        var detection = run.GetProperty("detection");
        Assert.Equal(500, detection.GetProperty("poisoned").GetInt32());
        await Assertions.Expect(page.Locator("[data-testid=detection-suspected]"))
            .ToContainTextAsync($"{detection.GetProperty("truePositives").GetInt32():N0} of the 500 poisoned");
        await Assertions.Expect(page.Locator("[data-testid=detection-recall]")).ToHaveTextAsync($"{detection.GetProperty("recall").GetDouble() * 100:0.00}%");
        await Assertions.Expect(page.Locator("[data-testid=card-ACC] [data-testid=before]"))
            .ToHaveTextAsync($"{run.GetProperty("before").GetProperty("acc").GetDouble() * 100:0.00}%");
        await Assertions.Expect(page.Locator("[data-testid=stage-chart-enhance] polyline, [data-testid=stage-chart-enhance] circle").First).ToBeVisibleAsync();
        await Assertions.Expect(page.Locator("[data-testid=stage-partition]")).ToContainTextAsync("likely-clean set D_c: 250 samples");
        await Assertions.Expect(page.Locator("[data-testid=trajectory-chart]")).ToHaveCountAsync(0);
        await Shot(page, "training-run");

        // The suspects' list the page offers is the API's, one row per training sample.
        var download = await page.RunAndWaitForDownloadAsync(() => page.ClickAsync("[data-testid=download-suspected]"));
        var saved = Path.Combine(server.DataDirectory, "suspected.csv");
        await download.SaveAsAsync(saved);
        Assert.Equal(await api.GetByteArrayAsync($"api/runs/{runId}/artifacts/suspected.csv"), await File.ReadAllBytesAsync(saved));
        Assert.Equal(5001, File.ReadAllLines(saved).Length);

        // History names what was trained from what.
        await page.ClickAsync("a[href='/history']");
        await Assertions.Expect(page.Locator("[data-testid=history-grid] tbody tr", new() { HasText = "advrbd" }).First).ToContainTextAsync("smallcnn trained from");
        Assert.Empty(errors);
    }

    [Fact]
    public async Task The_theme_follows_the_systems_light_or_dark_preference()
    {
        async Task<string> BackgroundAsync(ColorScheme scheme)
        {
            await using var context = await browser.Browser.NewContextAsync(new BrowserNewContextOptions { BaseURL = server.BaseAddress.ToString(), ColorScheme = scheme });
            var page = await context.NewPageAsync();
            await page.GotoAsync("login");
            await Assertions.Expect(page.Locator("#login")).ToBeVisibleAsync(new() { Timeout = 60_000 });
            await page.WaitForFunctionAsync("() => getComputedStyle(document.body).backgroundColor !== 'rgba(0, 0, 0, 0)'");
            await page.WaitForTimeoutAsync(500); // the theme switches after the first render, once the preference is read
            if (scheme == ColorScheme.Dark) await Shot(page, "login-dark");
            return await page.EvaluateAsync<string>("() => getComputedStyle(document.body).backgroundColor");
        }

        var light = await BackgroundAsync(ColorScheme.Light);
        var dark = await BackgroundAsync(ColorScheme.Dark);
        Assert.Equal("rgb(255, 255, 255)", light);
        var channels = dark.TrimStart("rgb(".ToCharArray()).TrimEnd(')').Split(',').Select(c => int.Parse(c.Trim(), System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        Assert.True(channels.All(c => c < 80), $"dark background expected, got {dark}");
    }

    [Fact]
    public async Task A_cold_load_of_the_login_page_is_small_compressed_cached_for_good_and_shows_its_progress()
    {
        // The first paint, before any WebAssembly arrived: index.html carries the progress bar.
        using (var http = new HttpClient { BaseAddress = server.BaseAddress })
        {
            var html = await http.GetStringAsync("login");
            Assert.Contains("role=\"progressbar\"", html, StringComparison.Ordinal);
            Assert.DoesNotContain("#[", html, StringComparison.Ordinal);
        }

        await using var context = await NewContextAsync();   // a new context: an empty cache
        var page = await context.NewPageAsync();
        var finished = new List<IRequest>();
        page.RequestFinished += (_, r) =>
        {
            lock (finished) finished.Add(r);
        };
        await page.GotoAsync("login");
        await Assertions.Expect(page.Locator("#login")).ToBeVisibleAsync(new() { Timeout = 60_000 });
        await page.WaitForLoadStateAsync(LoadState.NetworkIdle);
        // blazor.webassembly.js fed the bar while its files arrived.
        Assert.Equal("\"100%\"", await page.EvaluateAsync<string>("() => getComputedStyle(document.documentElement).getPropertyValue('--blazor-load-percentage-text').trim()"));

        IRequest[] requests;
        lock (finished) requests = [.. finished];
        long transferred = 0;
        foreach (var request in requests)
        {
            var sizes = await request.SizesAsync();
            transferred += sizes.ResponseBodySize + sizes.ResponseHeadersSize;
        }

        output.WriteLine($"cold load of /login: {requests.Length} requests, {transferred:N0} bytes transferred");
        Assert.InRange(transferred, 500_000, 6_000_000);
        Assert.DoesNotContain(requests, r => r.Url.EndsWith(".pdb", StringComparison.Ordinal));
        var framework = requests.Where(r => r.Url.Contains("/_framework/", StringComparison.Ordinal)).ToArray();
        Assert.Contains(framework, r => r.Url.EndsWith(".wasm", StringComparison.Ordinal));
        foreach (var request in framework)
        {
            // Fingerprinted names, sent precompressed (brotli) and cached for a year.
            Assert.Matches(@"\.[a-z0-9]{10}\.(wasm|js|dat)$", new Uri(request.Url).AbsolutePath);
            var headers = await (await request.ResponseAsync())!.AllHeadersAsync();
            Assert.Equal("br", headers.GetValueOrDefault("content-encoding"));
            Assert.Contains("immutable", headers.GetValueOrDefault("cache-control") ?? "", StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Keyboard_users_skip_to_the_page_and_see_where_the_focus_is()
    {
        await using var context = await NewContextAsync();
        var page = await context.NewPageAsync();
        await page.GotoAsync("login");
        await page.FillAsync("#email", ServerProcess.AdminEmail);
        await page.FillAsync("#password", ServerProcess.AdminPassword);
        await page.ClickAsync("#login");
        await Assertions.Expect(page.Locator("[data-testid=whoami]")).ToContainTextAsync(ServerProcess.AdminEmail);

        // A fresh load: the first Tab shows the skip link above the app bar, with a focus ring.
        await page.GotoAsync("history");
        await Assertions.Expect(page.Locator("[data-testid=whoami]")).ToContainTextAsync(ServerProcess.AdminEmail);
        await page.Keyboard.PressAsync("Tab");
        var skip = page.Locator("[data-testid=skip-link]");
        await Assertions.Expect(skip).ToBeFocusedAsync();
        Assert.InRange((await skip.BoundingBoxAsync())!.Y, 0, 40);
        Assert.Equal("solid", await skip.EvaluateAsync<string>("e => getComputedStyle(e).outlineStyle"));

        // Enter lands in the page's main landmark, under its h1; the next Tab is a control of the page, ringed.
        await page.Keyboard.PressAsync("Enter");
        await Assertions.Expect(page.Locator("main#main")).ToBeFocusedAsync();
        Assert.Equal("History", await page.Locator("main#main > h1").TextContentAsync());
        await page.Keyboard.PressAsync("Tab");
        Assert.True(await page.EvaluateAsync<bool>("() => document.querySelector('main').contains(document.activeElement)"));
        Assert.Equal("solid", await page.EvaluateAsync<string>("() => getComputedStyle(document.activeElement).outlineStyle"));
    }

    /// <summary>A desktop-sized browser context on the server that accepts downloads.</summary>
    private async Task<IBrowserContext> NewContextAsync()
    {
        var context = await browser.Browser.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = server.BaseAddress.ToString(),
            ViewportSize = new ViewportSize { Width = 1280, Height = 860 },
            AcceptDownloads = true,
        });
        context.SetDefaultTimeout(30_000);
        Assertions.SetDefaultExpectTimeout(30_000); // the WebAssembly app starts in seconds, slower when the machine is busy
        return context;
    }

    private static async Task Shot(IPage page, string name)
    {
        Directory.CreateDirectory(Screenshots);
        await page.WaitForLoadStateAsync(LoadState.NetworkIdle);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Screenshots, name + ".png"), FullPage = true });
    }
}
