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

    [Fact]
    public void Choosing_another_model_drops_the_demo_sets_that_do_not_fit_it_and_asks_for_the_target_label()
    {
        var popovers = Render<MudPopoverProvider>();
        var demo = System.Text.Json.Nodes.JsonNode.Parse(Fixtures.Text("models.json"))!.AsArray()[2]!;
        var cifar = demo.DeepClone();
        cifar["id"] = "5a1d0c36-0c4e-4b7e-9a0c-6f3d1c2b9e11";
        cifar["name"] = "my-cifar-resnet.ts.pt";
        cifar["inputShape"] = new System.Text.Json.Nodes.JsonArray(3, 32, 32);
        Api.Json("GET", "/api/defenses", Fixtures.Text("defenses.json"))
            .Json("GET", "/api/models", new System.Text.Json.Nodes.JsonArray(demo.DeepClone(), cifar).ToJsonString())
            .Json("GET", "/api/datasets", Fixtures.Text("datasets.json"))
            .Json("GET", "/api/models/architectures", """[{"name":"smallcnn","description":"small"}]""");
        var page = Render<NewRun>();
        page.WaitForAssertion(() => Assert.NotEmpty(page.FindAll("[data-testid=stepper]")));

        page.Find("[data-testid=model-select]").Closest(".mud-input-control")!.MouseDown();
        popovers.WaitForAssertion(() => Assert.Contains(popovers.FindAll(".mud-list-item"), i => i.TextContent.Contains("my-cifar-resnet", StringComparison.Ordinal)));
        popovers.FindAll(".mud-list-item").First(i => i.TextContent.Contains("my-cifar-resnet", StringComparison.Ordinal)).Click();

        // The demo's 1×28×28 sets do not fit a 3×32×32 model: none stays chosen, and no target label is assumed.
        Next(page);
        page.WaitForAssertion(() => Assert.Contains("Data", ActiveStep(page)));
        Assert.Empty(page.Find("[data-testid=target-label] input").GetAttribute("value") ?? "");
        Assert.DoesNotContain("Fashion-MNIST", page.Find("[data-testid=dataset-clean]").Closest(".mud-input-control")!.TextContent);
    }
}
