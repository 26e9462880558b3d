using System.Text.Json;
using System.Text.Json.Nodes;
using MudBlazor;
using WebDefense.Client.Api;
using WebDefense.Client.Charts;
using WebDefense.Client.Components;
using WebDefense.Client.Pages;

namespace WebDefense.Client.Tests;

/// <summary>
/// The backdoor scan on the dashboard, from runs captured from the service (demo model, seeded clean set, seed 1):
/// a scan run and a Grad-Prune run given no trigger, which scanned first.
/// </summary>
public sealed class ScanTests : DashboardTest
{
    private void ServeRun(string runJson, string trajectoryJson) => ServeRun(runJson, trajectoryJson, Fixtures.Text("datasets.json"));

    [Fact]
    public void A_scan_run_shows_the_verdict_the_anomaly_chart_and_every_labels_trigger_images_and_offers_no_model()
    {
        var run = Fixtures.Read<RunInfo>("scan-run.json");
        ServeRun(Fixtures.Text("scan-run.json"), Fixtures.Text("scan-trajectory.json"));
        var page = Render<RunDetail>(p => p.Add(c => c.Id, run.Id));
        page.WaitForAssertion(() => Assert.NotEmpty(page.FindAll("[data-testid=scan-panel]")));

        Assert.True(run.IsScan);
        var scan = run.Scan!;
        Assert.Contains($"Backdoor suspected towards label {scan.TargetLabel} (anomaly index", page.Find("[data-testid=scan-verdict]").TextContent);
        Assert.Equal(scan.Labels.Length, page.FindAll("[data-testid=anomaly-chart] rect").Count);
        // The flagged label is drawn red and listed first, with its three images served from the run's scan artifacts.
        Assert.Equal(scan.Labels.Count(l => l.Flagged), page.FindAll("[data-testid=anomaly-chart] rect[fill='#d32f2f']").Count);
        var rows = page.FindAll("[data-testid=scan-labels] tbody tr");
        Assert.Equal(scan.Labels.Length, rows.Count);
        Assert.Contains("(flagged)", rows[0].TextContent);
        foreach (var what in new[] { "mask", "pattern", "example" })
        {
            Assert.Equal($"api/runs/{run.Id}/artifacts/scan/trigger-{scan.TargetLabel}-{what}.png", page.Find($"[data-testid=trigger-{scan.TargetLabel}-{what}]").GetAttribute("src"));
        }

        // A scan makes no model: no model download, scan.json instead, and no outcome chip (it purified nothing).
        Assert.Empty(page.FindAll("[data-testid=download-model]"));
        Assert.Equal($"api/runs/{run.Id}/artifacts/scan/scan.json", page.Find("[data-testid=download-scan]").GetAttribute("href"));
        Assert.Empty(page.FindAll("[data-testid=outcome]"));
    }

    [Fact]
    public void A_run_that_left_the_model_unchanged_says_its_outcome_once()
    {
        var run = Fixtures.Read<RunInfo>("gradprune-scan-run.json") with
        {
            Outcome = new BackdoorOutcome("still-present", "measured", "Backdoor still present: ASR on the backdoor test set 99.6 % → 99.6 %. The defense left the model unchanged.", false, null, null),
        };
        ServeRun(System.Text.Json.JsonSerializer.Serialize(run, WebDefenseApi.Json), Fixtures.Text("gradprune-scan-trajectory.json"));
        var page = Render<RunDetail>(p => p.Add(c => c.Id, run.Id));
        page.WaitForAssertion(() => Assert.NotEmpty(page.FindAll("[data-testid=outcome-summary]")));
        Assert.Contains("model unchanged", page.Find("[data-testid=outcome]").TextContent);
        Assert.Equal(1, System.Text.RegularExpressions.Regex.Count(page.Find("[data-testid=outcome-summary]").TextContent, "Backdoor still present"));
    }

    [Fact]
    public void A_run_given_no_trigger_shows_its_measured_outcome_beside_the_status_and_the_scan_before_it()
    {
        var run = Fixtures.Read<RunInfo>("gradprune-scan-run.json");
        ServeRun(Fixtures.Text("gradprune-scan-run.json"), Fixtures.Text("gradprune-scan-trajectory.json"));
        var page = Render<RunDetail>(p => p.Add(c => c.Id, run.Id));
        page.WaitForAssertion(() => Assert.NotEmpty(page.FindAll("[data-testid=outcome]")));

        var chip = page.Find("[data-testid=outcome]");
        Assert.Equal(run.Outcome!.Outcome, chip.GetAttribute("data-outcome"));
        Assert.Equal("measured", chip.GetAttribute("data-basis"));
        Assert.DoesNotContain("(estimated)", chip.TextContent);
        var summary = page.Find("[data-testid=outcome-summary]").TextContent;
        Assert.Contains(run.Outcome.Summary!, summary);
        // The summary opens with the outcome's words ("Backdoor …"); the alert does not say them twice.
        Assert.Equal(1, System.Text.RegularExpressions.Regex.Count(summary, "Backdoor (still present|reduced|removed)"));
        Assert.Contains("Backdoor scan before the defense", page.Find("[data-testid=scan-panel]").TextContent);
        // The step list has the scan's three steps before the defense's own, after the evaluation of the model as given.
        var steps = page.FindAll("[data-testid=steps] li .wd-step").Select(i => i.TextContent.Trim()).ToArray();
        Assert.Equal(["evaluate before", "invert triggers", "anomaly index", "estimate ASR"], steps[..4]);
        Assert.Equal("evaluate after", steps[^1]);
        Assert.NotEmpty(page.FindAll("[data-testid=download-model]"));
    }

    [Fact]
    public void An_estimated_outcome_says_so_and_the_estimate_is_its_own_dashed_series()
    {
        // The same run as if no backdoor test set had been given: the scan's estimate is all the server could report.
        var json = JsonNode.Parse(Fixtures.Text("gradprune-scan-run.json"))!;
        json["outcome"]!["basis"] = "estimated";
        json["outcome"]!["outcome"] = "removed";
        ServeRun(json.ToJsonString(), Fixtures.Text("gradprune-scan-trajectory.json"));
        var run = JsonSerializer.Deserialize<RunInfo>(json.ToJsonString(), WebDefenseApi.Json)!;
        var page = Render<RunDetail>(p => p.Add(c => c.Id, run.Id));
        page.WaitForAssertion(() => Assert.NotEmpty(page.FindAll("[data-testid=outcome]")));

        Assert.Equal("Backdoor removed (estimated)", page.Find("[data-testid=outcome]").TextContent.Trim());
        Assert.Contains("these numbers are the scan's estimate", page.Find("[data-testid=outcome-summary]").TextContent);
        var points = Fixtures.Read<TrajectoryPoint[]>("gradprune-scan-trajectory.json");
        Assert.All(points, p => Assert.Null(p.ValAsr));
        var phase = TrajectoryView.ChosenPhase(points)!;
        var series = TrajectoryView.Series(points, phase);
        var estimate = Assert.Single(series, s => s.Name == TrajectoryView.EstimatedAsr);
        Assert.True(estimate.Dashed);
        Assert.DoesNotContain(series, s => s.Name == "ASR");
    }

    [Fact]
    public void The_history_grid_shows_each_runs_outcome_beside_its_status()
    {
        Render<MudPopoverProvider>();
        var withOutcome = Fixtures.Text("gradprune-scan-run.json");
        var page1 = $$"""{"items":[{{withOutcome}},{{Fixtures.Text("scan-run.json")}}],"total":2,"page":1,"pageSize":20}""";
        Api.Json("GET", "/api/defenses", Fixtures.Text("defenses.json"))
            .Json("GET", "/api/models", Fixtures.Text("models.json"))
            .Json("GET", "/api/datasets", Fixtures.Text("datasets.json"))
            .Json("GET", "/api/runs", page1);
        var page = Render<History>();
        page.WaitForAssertion(() => Assert.Equal(2, page.FindAll("[data-testid=history-grid] tbody tr").Count));

        var rows = page.FindAll("[data-testid=history-grid] tbody tr");
        var run = JsonSerializer.Deserialize<RunInfo>(withOutcome, WebDefenseApi.Json)!;
        Assert.Equal(OutcomeChip.Text(run.Outcome!), rows[0].QuerySelector("[data-testid=outcome]")!.TextContent.Trim());
        Assert.Null(rows[1].QuerySelector("[data-testid=outcome]"));
    }
}
