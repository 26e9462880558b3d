using System.Net;
using MudBlazor;
using WebDefense.Client.Pages;

namespace WebDefense.Client.Tests;

/// <summary>New defense's stepper: Next checks the step it leaves, and the review step has one button that starts the run.</summary>
public sealed class NewRunStepperTests : DashboardTest
{
    private IRenderedComponent<NewRun> RenderNewRun()
    {
        Render<MudPopoverProvider>();
        Api.Json("GET", "/api/defenses", Fixtures.Text("defenses.json"))
            .Json("GET", "/api/models", Fixtures.Text("models.json"))
            .Json("GET", "/api/datasets", Fixtures.Text("datasets.json"))
            .Json("GET", "/api/models/architectures", """[{"name":"smallcnn","description":"small"}]""")
            .Json("POST", "/api/runs", """{"runIds":["0b7c8a1e-8d2f-4f5e-9a55-3c1f6f0d2a10"]}""", HttpStatusCode.Accepted);
        var page = Render<NewRun>();
        page.WaitForAssertion(() => Assert.NotEmpty(page.FindAll("[data-testid=stepper]")));
        return page;
    }

    private static void Next(IRenderedComponent<NewRun> page) => page.Find("[data-testid=step-next]").Click();

    private static string ActiveStep(IRenderedComponent<NewRun> page) => page.Find(".mud-step.active").TextContent;

    [Fact]
    public void An_invalid_parameter_is_marked_at_its_field_and_next_stays_on_the_defense_step()
    {
        var page = RenderNewRun();
        Next(page);
        Next(page);
        page.WaitForAssertion(() => Assert.Contains("Defense", ActiveStep(page)));

        page.Find("[data-param=max_rounds] input").Input("0");
        Assert.Contains("must be at least 1", page.Find("[data-param=max_rounds]").TextContent);
        page.Find("[data-param=max_rounds] input").Blur();   // clicking Next takes the focus away first
        Assert.Contains("must be at least 1", page.Find("[data-param=max_rounds]").TextContent);
        page.Find("input[data-testid=seeds]").Change("1, x");
        page.Find("input[data-testid=seeds]").Blur();

        Next(page);

        Assert.Contains("Defense", ActiveStep(page));
        Assert.Contains("mud-step-error", page.FindAll(".mud-step").Single(s => s.TextContent.Contains("Defense", StringComparison.Ordinal)).ClassName);
        Assert.Contains("must be at least 1", page.Find("[data-param=max_rounds]").TextContent);
        Assert.Contains("'x' is not a seed", page.Find("input[data-testid=seeds]").Closest(".mud-input-control")!.TextContent);
        Assert.DoesNotContain(Api.Requests, r => r.Method == HttpMethod.Post);

        // Fixed: the marks go as the values become valid, and Next goes on.
        page.Find("[data-param=max_rounds] input").Input("5");
        page.Find("input[data-testid=seeds]").Change("1");
        Assert.DoesNotContain("must be at least", page.Find("[data-param=max_rounds]").TextContent);
        Assert.DoesNotContain("not a seed", page.Find("input[data-testid=seeds]").Closest(".mud-input-control")!.TextContent);
        Assert.DoesNotContain("mud-step-error", page.FindAll(".mud-step").Single(s => s.TextContent.Contains("Defense", StringComparison.Ordinal)).ClassName);
        Next(page);
        page.WaitForAssertion(() => Assert.Contains("Start", ActiveStep(page)));
        Assert.DoesNotContain("mud-step-error", page.FindAll(".mud-step").Single(s => s.TextContent.Contains("Defense", StringComparison.Ordinal)).ClassName);
    }

    [Fact]
    public void The_review_step_has_no_complete_button_only_start_which_starts_the_run()
    {
        var page = RenderNewRun();
        Next(page);
        Next(page);
        page.WaitForAssertion(() => Assert.Contains("Defense", ActiveStep(page)));
        page.Find("[data-param=max_rounds] input").Input("7");
        Next(page);
        page.WaitForAssertion(() => Assert.Contains("Start", ActiveStep(page)));

        var buttons = page.FindAll("[data-testid=stepper] button:not([role=tab])").Select(b => b.TextContent.Trim()).ToList();
        Assert.DoesNotContain(buttons, b => b.Contains("Complete", StringComparison.OrdinalIgnoreCase));
        Assert.DoesNotContain(buttons, b => b.Contains("Next", StringComparison.OrdinalIgnoreCase));
        Assert.Equal(["Start defense", "Previous"], buttons.Where(b => b is "Start defense" or "Previous"));
        Assert.Equal(2, buttons.Count);

        page.Find("[data-testid=start-run]").Click();
        var post = Assert.Single(Api.Requests, r => r.Method == HttpMethod.Post);
        var body = System.Text.Json.JsonDocument.Parse(post.Body!).RootElement;
        Assert.Equal(7, body.GetProperty("parameters").GetProperty("max_rounds").GetInt32());
    }
}
