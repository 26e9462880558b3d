using Microsoft.AspNetCore.Components;
using Microsoft.Extensions.DependencyInjection;
using WebDefense.Client.Layout;

namespace WebDefense.Client.Tests;

/// <summary>The layout every page shares: skip link, one main landmark, an h1 naming the page.</summary>
public sealed class LayoutTests : DashboardTest
{
    [Fact]
    public void Every_page_sits_in_one_main_landmark_under_an_h1_that_names_it_and_the_first_tab_stop_skips_to_it()
    {
        Api.Json("GET", "/api/auth/me", """{"id":"6f1f1d4e-3a51-4a44-9d0e-0d5b7f0e9a01","email":"admin@webdefense.local","teamId":"2b0b3c36-5f1e-4b8e-b1c5-0f9e8f1a2b3c","teamName":"default","admin":true}""");
        var nav = Context.Services.GetRequiredService<NavigationManager>();
        nav.NavigateTo("history");
        RenderFragment page = b => b.AddMarkupContent(0, "<p id=\"the-page\">the page</p>");
        var layout = Render<MainLayout>(p => p.Add(l => l.Body, page));
        layout.WaitForAssertion(() => Assert.NotEmpty(layout.FindAll("[data-testid=whoami]")));

        var main = Assert.Single(layout.FindAll("main"));
        Assert.Equal("main", main.Id);
        Assert.NotNull(main.QuerySelector("#the-page"));
        var h1 = Assert.Single(layout.FindAll("h1"));
        Assert.Equal("History", h1.TextContent);
        Assert.Same(main, h1.ParentElement);

        // The skip link comes before the app bar's buttons and the menu's links, and moves focus into main.
        var tabStops = layout.FindAll("a[href], button, input, [tabindex]:not([tabindex='-1'])");
        var skip = tabStops[0];
        Assert.Equal("skip-link", skip.GetAttribute("data-testid"));
        Assert.Equal("#main", skip.GetAttribute("href"));
        Assert.True(tabStops.Count > 3);
        skip.Click();
        Context.JSInterop.VerifyFocusAsyncInvoke();

        nav.NavigateTo("new");
        layout.WaitForAssertion(() => Assert.Equal("New defense", layout.Find("h1").TextContent));
        nav.NavigateTo("runs/0b7c8a1e-8d2f-4f5e-9a55-3c1f6f0d2a10");
        layout.WaitForAssertion(() => Assert.Equal("Run", layout.Find("h1").TextContent));
    }
}
