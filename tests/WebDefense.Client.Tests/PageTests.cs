using System.Net;
using MudBlazor;
using WebDefense.Client.Api;
using WebDefense.Client.Pages;

namespace WebDefense.Client.Tests;

public sealed class PageTests : DashboardTest
{
    private void ServeRun(string runFixture, string trajectoryFixture)
    {
        var run = Fixtures.Read<RunInfo>(runFixture);
        Api.Json("GET", $"/api/runs/{run.Id}", Fixtures.Text(runFixture))
            .Json("GET", $"/api/runs/{run.Id}/trajectory", Fixtures.Text(trajectoryFixture))
            .Json("GET", $"/api/runs/{run.Id}/artifacts/log", "2026-11-23T16:00:32Z worker process started\n", type: "text/plain")
            .Json("GET", "/api/defenses", Fixtures.Text("defenses.json"))
            .Json("GET", "/api/models", Fixtures.Text("models.json"));
    }

    [Fact]
    public void A_finished_run_shows_cards_steps_chart_detection_and_downloads()
    {
        ServeRun("rnp-run.json", "rnp-trajectory.json");
        var run = Fixtures.RnpRun;
        var page = Render<RunDetail>(p => p.Add(c => c.Id, run.Id));
        page.WaitForAssertion(() => Assert.NotEmpty(page.FindAll("[data-testid=metric-cards]")));

        Assert.Equal("87.04%", page.Find("[data-testid=card-ACC] [data-testid=before]").TextContent);
        Assert.Equal("99.58%", page.Find("[data-testid=card-ASR] [data-testid=before]").TextContent);
        Assert.Equal("0.500", page.Find("[data-testid=card-DER] .mud-typography-h5").TextContent);
        // Every step of RNP is done, between the runner's evaluations of the test sets before and after.
        var steps = page.FindAll("[data-testid=steps] li .wd-step").Select(i => i.TextContent.Trim()).ToArray();
        Assert.Equal(["evaluate before", .. Fixtures.Defense("rnp").Steps, "evaluate after"], steps);
        Assert.Contains("predicts class 0 for 13.78%", page.Find("[data-testid=detected-label]").TextContent);
        Assert.Single(page.FindAll("[data-testid=trajectory-chart] g.marker"));
        Assert.Equal($"api/runs/{run.Id}/artifacts/model", page.Find("[data-testid=download-model]").GetAttribute("href"));
        Assert.Contains("worker process started", page.Find("[data-testid=log]").TextContent);
        Assert.Contains("unlearning_epochs", page.Find("[data-testid=parameters]").TextContent);
        // Finished: no live stream was opened and there is nothing to cancel.
        Assert.DoesNotContain(Api.Requests, r => r.Path.EndsWith("/events", StringComparison.Ordinal));
        Assert.Empty(page.FindAll("[data-testid=cancel]"));
    }

    [Fact]
    public void Every_metric_links_to_its_glossary_entry_and_parameters_and_findings_read_as_words()
    {
        ServeRun("rnp-run.json", "rnp-trajectory.json");
        var run = Fixtures.RnpRun;
        var page = Render<RunDetail>(p => p.Add(c => c.Id, run.Id));
        page.WaitForAssertion(() => Assert.NotEmpty(page.FindAll("[data-testid=metric-cards]")));

        foreach (var metric in new[] { "ACC", "ASR", "RA", "DER" })
        {
            var link = page.Find($"[data-testid=card-{metric}] a.wd-term");
            Assert.Equal($"glossary#{metric.ToLowerInvariant()}", link.GetAttribute("href"));
            Assert.Contains(metric == "ASR" ? "lower is better" : "higher is better", link.GetAttribute("title"));
        }

        Assert.Contains("lower is better", page.Find("[data-testid=card-ASR]").TextContent);
        // Parameters by their human name, with the API's name beside it for requests and logs.
        var parameters = page.Find("[data-testid=parameters]").TextContent;
        Assert.Contains("Unlearning epochs", parameters);
        Assert.Contains("unlearning_epochs", parameters);
        // A fraction named like a metric reads in percent, as every metric does.
        var findings = page.Find("[data-testid=findings]").TextContent;
        Assert.Contains("86.20%", findings);    // unlearned_train_acc 0.8619…
        Assert.Contains("13.78%", findings);    // detected_label_share 0.1377…
        Assert.Contains("Unlearned train ACC", findings);
    }

    [Fact]
    public void The_glossary_says_what_each_metric_measures_and_which_way_is_better()
    {
        var page = Render<GlossaryPage>();
        foreach (var (term, better) in new[] { ("acc", "higher is better"), ("asr", "lower is better"), ("ra", "higher is better"), ("der", "1 is best"), ("pp", "percentage points") })
        {
            var entry = page.Find($"dt#{term}");
            Assert.Contains(better, entry.TextContent + entry.NextElementSibling!.TextContent);
        }
    }

    [Fact]
    public void A_data_free_run_has_no_detection_and_its_deltas_say_which_way_is_better()
    {
        ServeRun("clp-run.json", "clp-trajectory.json");
        var run = Fixtures.Read<RunInfo>("clp-run.json");
        var page = Render<RunDetail>(p => p.Add(c => c.Id, run.Id));
        page.WaitForAssertion(() => Assert.NotEmpty(page.FindAll("[data-testid=metric-cards]")));

        Assert.Empty(page.FindAll("[data-testid=detected-label]"));
        var asr = page.Find("[data-testid=card-ASR] [data-testid=delta]");
        Assert.Equal("−99.58 pp", asr.TextContent.Trim());
        Assert.Contains("mud-chip-color-success", asr.ClassName);   // ASR went down: good
        var acc = page.Find("[data-testid=card-ACC] [data-testid=delta]");
        Assert.Equal("−11.28 pp", acc.TextContent.Trim());
        Assert.Contains("mud-chip-color-error", acc.ClassName);     // ACC went down: bad
    }

    [Fact]
    public void A_refused_start_puts_each_error_next_to_its_field()
    {
        Render<MudPopoverProvider>();
        Api.Json("GET", "/api/defenses", Fixtures.Text("defenses.json"))
            .Json("GET", "/api/models", Fixtures.Text("models.json"))
            .Json("GET", "/api/datasets", Fixtures.Text("datasets.json"))
            .Json("GET", "/api/models/architectures", """[{"name":"smallcnn","description":"small"}]""")
            .Json("POST", "/api/runs", Fixtures.Text("validation-problem.json"), HttpStatusCode.BadRequest, "application/problem+json");
        var page = Render<NewRun>();
        page.WaitForAssertion(() => Assert.NotEmpty(page.FindAll("[data-testid=stepper]")));

        foreach (var step in new[] { "Data", "Defense", "Start" })
        {
            page.FindAll("button").First(b => b.TextContent.Contains("Next", StringComparison.Ordinal)).Click();
            page.WaitForAssertion(() => Assert.Contains(step, page.Find(".mud-step.active").TextContent));
        }

        page.Find("[data-testid=start-run]").Click();

        // The request carried the form's choices: the newest model and the seeded sets.
        var post = Assert.Single(Api.Requests, r => r.Method == HttpMethod.Post);
        var body = System.Text.Json.JsonDocument.Parse(post.Body!).RootElement;
        Assert.Equal("grad-prune", body.GetProperty("defense").GetString());
        Assert.Equal(Fixtures.Read<ModelInfo[]>("models.json")[0].Id, body.GetProperty("modelId").GetGuid());

        // The answer names data fields, so the page goes back to the Data step and shows them there.
        page.WaitForAssertion(() => Assert.Contains("required to measure the attack success rate", page.Find("[data-testid=target-label]").TextContent));
        Assert.Contains("grad-prune needs backdoor samples", page.Find("[data-testid=backdoor-samples-error]").TextContent);
        Assert.Contains("One or more validation errors occurred.", page.Find("[data-testid=start-error]").TextContent);
    }

    [Fact]
    public void The_history_grid_pages_and_sorts_on_the_server()
    {
        Render<MudPopoverProvider>();
        var page1 = $$"""{"items":[{{Fixtures.Text("rnp-run.json")}}],"total":41,"page":1,"pageSize":20}""";
        Api.Json("GET", "/api/defenses", Fixtures.Text("defenses.json"))
            .Json("GET", "/api/models", Fixtures.Text("models.json"))
            .Json("GET", "/api/runs", page1);
        var page = Render<History>();
        page.WaitForAssertion(() => Assert.Contains("87.04% → 87.04%", page.Find("[data-testid=history-grid] tbody").TextContent));
        Assert.Contains(Api.Requests, r => r.Path == "/api/runs");

        // Sorting by ASR asks the server (sort=afterAsr), it does not sort the one page it has.
        var header = page.FindAll("th").First(th => th.TextContent.Contains("ASR before", StringComparison.Ordinal));
        header.QuerySelector(".sortable-column-header")!.Click();
        page.WaitForAssertion(() => Assert.True(Api.Queries.Any(q => q.Contains("sort=afterAsr", StringComparison.Ordinal) || q.Contains("sort=-afterAsr", StringComparison.Ordinal)), string.Join(" | ", Api.Queries)));
        Assert.Contains("1-20 of 41", page.Markup.Replace("–", "-", StringComparison.Ordinal));
    }

    [Fact]
    public void History_cancels_the_selected_active_runs_and_deletes_the_selected_finished_ones_after_asking()
    {
        Render<MudPopoverProvider>();
        var finished = Fixtures.RnpRun;
        var running = finished with { Id = Guid.NewGuid(), Status = "Running" };
        var json = System.Text.Json.JsonSerializer.Serialize(new[] { finished, running }, WebDefenseApi.Json);
        Api.Json("GET", "/api/defenses", Fixtures.Text("defenses.json"))
            .Json("GET", "/api/models", Fixtures.Text("models.json"))
            .Json("GET", "/api/runs", $$"""{"items":{{json}},"total":2,"page":1,"pageSize":20}""")
            .On("DELETE", $"/api/runs/{finished.Id}", _ => new HttpResponseMessage(System.Net.HttpStatusCode.NoContent))
            .Json("POST", $"/api/runs/{running.Id}/cancel", System.Text.Json.JsonSerializer.Serialize(running with { Status = "Cancelled" }, WebDefenseApi.Json), System.Net.HttpStatusCode.Accepted);
        var page = Render<History>();
        page.WaitForAssertion(() => Assert.Equal(2, page.FindAll("[data-testid=history-grid] tbody tr input[type=checkbox]").Count));
        Assert.True(page.Find("[data-testid=delete-selected]").HasAttribute("disabled"));

        foreach (var box in page.FindAll("[data-testid=history-grid] tbody tr input[type=checkbox]").ToList()) box.Change(true);
        page.WaitForAssertion(() => Assert.Contains("Delete 1", page.Find("[data-testid=delete-selected]").TextContent));
        Assert.Contains("Cancel 1", page.Find("[data-testid=cancel-selected]").TextContent);

        // Delete asks first, and "keep them" sends nothing.
        page.Find("[data-testid=delete-selected]").Click();
        Assert.Contains("Delete 1 finished run(s)", page.Find("[data-testid=bulk-confirm]").TextContent);
        page.Find("[data-testid=bulk-confirm-no]").Click();
        Assert.DoesNotContain(Api.Requests, r => r.Method == HttpMethod.Delete);

        page.Find("[data-testid=delete-selected]").Click();
        page.Find("[data-testid=bulk-confirm-yes]").Click();
        page.WaitForAssertion(() => Assert.Contains("Deleted 1 run(s).", page.Find("[data-testid=bulk-result]").TextContent));
        Assert.Single(Api.Requests, r => r.Method == HttpMethod.Delete && r.Path == $"/api/runs/{finished.Id}");
        Assert.DoesNotContain(Api.Requests, r => r.Method == HttpMethod.Delete && r.Path.Contains(running.Id.ToString(), StringComparison.Ordinal));

        // Cancel acts on the running run only; a refusal names the run and the server's reason.
        page.WaitForAssertion(() => Assert.Equal(2, page.FindAll("[data-testid=history-grid] tbody tr input[type=checkbox]").Count));
        foreach (var box in page.FindAll("[data-testid=history-grid] tbody tr input[type=checkbox]").ToList()) box.Change(true);
        Api.Json("POST", $"/api/runs/{running.Id}/cancel", """{"title":"Conflict","status":409,"detail":"the run has already finished"}""", System.Net.HttpStatusCode.Conflict, "application/problem+json");
        page.WaitForAssertion(() => Assert.Contains("Cancel 1", page.Find("[data-testid=cancel-selected]").TextContent));
        page.Find("[data-testid=cancel-selected]").Click();
        page.Find("[data-testid=bulk-confirm-yes]").Click();
        page.WaitForAssertion(() => Assert.Contains("Cancelled 0 run(s). 1 could not be", page.Find("[data-testid=bulk-result]").TextContent));
        Assert.Contains("already finished", page.Find("[data-testid=bulk-result]").TextContent);
        Assert.Single(Api.Requests, r => r.Method == HttpMethod.Post && r.Path == $"/api/runs/{running.Id}/cancel");
    }
}
