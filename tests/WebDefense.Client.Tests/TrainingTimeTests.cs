using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Components;
using Microsoft.Extensions.DependencyInjection;
using MudBlazor;
using WebDefense.Client.Api;
using WebDefense.Client.Charts;
using WebDefense.Client.Components;
using WebDefense.Client.Pages;

namespace WebDefense.Client.Tests;

/// <summary>Training-time runs (AdvrBD): the New-run flow, the run page with its stage chart, History and Compare.</summary>
public sealed class TrainingTimeTests : DashboardTest
{
    private const string Architectures = """[{"name":"smallcnn","description":"small CNN for 28×28 images"},{"name":"preactresnet18","description":"PreAct-ResNet-18"}]""";

    private IRenderedComponent<NewRun> RenderNewRun()
    {
        Api.Json("GET", "/api/defenses", Fixtures.Text("defenses.json"))
            .Json("GET", "/api/models", Fixtures.Text("models.json"))
            .Json("GET", "/api/datasets", Fixtures.DatasetsWithPoisonedTrain())
            .Json("GET", "/api/models/architectures", Architectures);
        var page = Render<NewRun>();
        page.WaitForAssertion(() => Assert.NotEmpty(page.FindAll("[data-testid=stepper]")));
        return page;
    }

    private static void Next(IRenderedComponent<NewRun> page, string step)
    {
        page.FindAll("button").First(b => b.TextContent.Contains("Next", StringComparison.Ordinal)).Click();
        page.WaitForAssertion(() => Assert.Contains(step, page.Find(".mud-step.active").TextContent));
    }

    private static string[] OfferedDefenses(IRenderedComponent<NewRun> page, IRenderedComponent<MudPopoverProvider> popovers)
    {
        page.Find("[data-testid=defense-select]").Closest(".mud-input-control")!.MouseDown();
        popovers.WaitForAssertion(() => Assert.NotEmpty(popovers.FindAll(".mud-list-item")));
        return popovers.FindAll(".mud-list-item").Select(i => i.TextContent.Trim()).ToArray();
    }

    private void ServeRun(string runJson, string trajectoryJson) => ServeRun(runJson, trajectoryJson, Fixtures.Text("poisoned-train-datasets.json"));

    [Fact]
    public void The_training_flow_posts_a_training_set_and_an_architecture_and_no_model()
    {
        var popovers = Render<MudPopoverProvider>();
        var runId = Guid.Parse("0d3c1a9e-5b7f-4e21-8c6a-2f4e6b8d0a1c");
        Api.Json("POST", "/api/runs", $$"""{"runIds":["{{runId}}"],"batchId":null}""", HttpStatusCode.Created);
        var page = RenderNewRun();

        page.Find("[data-testid=goal-train]").Click();
        page.WaitForAssertion(() => Assert.Contains("Training set", page.Find(".mud-step.active").TextContent));
        Next(page, "Evaluation");
        Next(page, "Defense");
        // Only training-time defenses are offered here, with their own parameter form.
        Assert.Equal(["AdvrBD (training-time: isolate poisoned samples, train without them)"], OfferedDefenses(page, popovers));
        Assert.Equal(Fixtures.Defense("advrbd").Parameters.Length, page.FindAll("[data-param]").Count);
        Assert.NotEmpty(page.FindAll("[data-param=partition_rate]"));
        Next(page, "Start");
        Assert.Contains(Fixtures.PoisonedTrainSet.Name, page.Find("[data-testid=review]").TextContent);

        page.Find("[data-testid=start-run]").Click();

        var post = Assert.Single(Api.Requests, r => r.Method == HttpMethod.Post);
        var body = JsonDocument.Parse(post.Body!).RootElement;
        Assert.Equal("advrbd", body.GetProperty("defense").GetString());
        Assert.Equal(Fixtures.PoisonedTrainSet.Id, body.GetProperty("poisonedTrainDatasetId").GetGuid());
        Assert.Equal("smallcnn", body.GetProperty("architecture").GetString());
        Assert.False(body.TryGetProperty("modelId", out _), post.Body);
        Assert.False(body.TryGetProperty("numClasses", out _), "an empty class count is left to the server");
        Assert.Equal(JsonValueKind.Null, body.GetProperty("cleanDatasetId").ValueKind);
        Assert.Equal(JsonValueKind.Null, body.GetProperty("backdoorSamplesDatasetId").ValueKind);
        Assert.Equal(Guid.Parse("b540c601-45fa-420e-a6b9-4065f0073897"), body.GetProperty("testDatasetId").GetGuid());
        Assert.Equal(0, body.GetProperty("targetLabel").GetInt32());
        Assert.Equal(0, body.GetProperty("seed").GetInt32());
        Assert.Empty(body.GetProperty("parameters").EnumerateObject());
        Assert.EndsWith($"runs/{runId}", Context.Services.GetRequiredService<NavigationManager>().Uri);
    }

    [Fact]
    public void The_purify_flow_offers_no_training_time_defense()
    {
        var popovers = Render<MudPopoverProvider>();
        var page = RenderNewRun();
        Next(page, "Data");
        Next(page, "Defense");

        var offered = OfferedDefenses(page, popovers);
        Assert.Equal(9, offered.Length);
        Assert.DoesNotContain(offered, d => d.StartsWith("AdvrBD", StringComparison.Ordinal));
        Assert.Contains(offered, d => d.StartsWith("Grad-Prune", StringComparison.Ordinal));
    }

    [Fact]
    public void A_refused_training_start_puts_each_error_next_to_its_field()
    {
        Render<MudPopoverProvider>();
        const string problem = """
            {"type":"https://tools.ietf.org/html/rfc9110#section-15.5.1","title":"One or more validation errors occurred.","status":400,
             "errors":{"poisonedTrainDatasetId":["not a data set of kind poisoned-train"],"architecture":["unknown architecture (known: smallcnn, preactresnet18)"],
                       "numClasses":["the training set has label 9: at least 10 classes"],"parameters.iterations":["must be at most 50"]}}
            """;
        Api.Json("POST", "/api/runs", problem, HttpStatusCode.BadRequest, "application/problem+json");
        var page = RenderNewRun();
        page.Find("[data-testid=goal-train]").Click();
        foreach (var step in new[] { "Evaluation", "Defense", "Start" }) Next(page, step);

        page.Find("[data-testid=start-run]").Click();

        // The answer names training-set fields: back to the first step, each message under its field.
        page.WaitForAssertion(() => Assert.Contains("Training set", page.Find(".mud-step.active").TextContent));
        Assert.Contains("not a data set of kind poisoned-train", page.Find("[data-testid=field-poisonedTrainDatasetId]").TextContent);
        Assert.Contains("unknown architecture", page.Find("[data-testid=architecture]").TextContent);
        Assert.DoesNotContain("unknown architecture", page.Find("[data-testid=num-classes]").TextContent);
        Assert.Contains("at least 10 classes", page.Find("[data-testid=num-classes]").TextContent);
        Assert.Contains("One or more validation errors occurred.", page.Find("[data-testid=start-error]").TextContent);

        // The parameter's message waits on the Defense step, next to that parameter only.
        Next(page, "Evaluation");
        Next(page, "Defense");
        Assert.Contains("must be at most 50", page.Find("[data-param=iterations]").TextContent);
        Assert.DoesNotContain("must be at most 50", page.Find("[data-param=epochs]").TextContent);
    }

    [Fact]
    public void A_finished_advrbd_run_shows_undefended_and_trained_cards_detection_and_stages()
    {
        ServeRun(Fixtures.Text("advrbd-run.json"), Fixtures.Text("advrbd-trajectory.json"));
        var run = Fixtures.AdvrbdRun;
        var page = Render<RunDetail>(p => p.Add(c => c.Id, run.Id));
        page.WaitForAssertion(() => Assert.NotEmpty(page.FindAll("[data-testid=detection]")));

        // Undefended (trained on the whole poisoned set) → AdvrBD-trained.
        Assert.Equal("Undefended", page.Find("[data-testid=before-title]").TextContent);
        Assert.Equal("AdvrBD-trained", page.Find("[data-testid=after-title]").TextContent);
        Assert.Equal("75.28%", page.Find("[data-testid=card-ACC] [data-testid=before]").TextContent);
        Assert.Equal("65.85%", page.Find("[data-testid=card-ACC] [data-testid=after]").TextContent);
        Assert.Equal("56.18%", page.Find("[data-testid=card-ASR] [data-testid=before]").TextContent);
        Assert.Equal("8.38%", page.Find("[data-testid=card-ASR] [data-testid=after]").TextContent);
        Assert.Equal("68.22%", page.Find("[data-testid=card-RA] [data-testid=after]").TextContent);
        Assert.Equal("0.692", page.Find("[data-testid=card-DER] .mud-typography-h5").TextContent);

        // Detection: of 5,000 training samples 1,195 suspected, 439 of the 500 poisoned among them.
        Assert.Equal("87.80%", page.Find("[data-testid=detection-recall]").TextContent);
        Assert.Equal("36.74%", page.Find("[data-testid=detection-precision]").TextContent);
        Assert.Equal("0.518", page.Find("[data-testid=detection-f1]").TextContent);
        var suspected = page.Find("[data-testid=detection-suspected]").TextContent;
        Assert.Contains("1,195 suspected of 5,000 training samples", suspected);
        Assert.Contains("439 of the 500 poisoned", suspected);

        // The header says what was trained from what; no model to name.
        Assert.Contains($"trains smallcnn (10 classes) from {Fixtures.PoisonedTrainSet.Name}", page.Find("[data-testid=trained-from]").TextContent);
        Assert.DoesNotContain(Api.Requests, r => r.Path == "/api/models");

        // The stage chart instead of a pruning trajectory: no operating-point marker.
        Assert.Empty(page.FindAll("[data-testid=trajectory-chart]"));
        Assert.Empty(page.FindAll("g.marker"));
        var enhance = page.Find("[data-testid=stage-chart-enhance]");
        var recall = enhance.QuerySelectorAll("g[data-series=recall] circle title").Select(t => t.TextContent).ToList();
        Assert.Equal(["recall 95.8% at iteration 1", "recall 99.8% at iteration 2", "recall 87.8% at iteration 3"], recall);
        Assert.Contains("precision 36.7% at iteration 3", enhance.QuerySelectorAll("g[data-series=precision] circle title").Select(t => t.TextContent));
        Assert.Contains("ACC on the rest 25.1% at iteration 3", enhance.QuerySelectorAll("circle title").Select(t => t.TextContent));
        Assert.Equal(3, enhance.QuerySelectorAll("g[data-series='likely-clean share'] circle").Length);
        // Counts per iteration under the chart.
        var counts = page.Find("[data-testid=stage-counts-enhance]");
        Assert.Contains("suspected", counts.QuerySelector("thead")!.TextContent);
        Assert.Equal(["1", "250", "13", "5", "1,822", "2,993", "239", "21"], counts.QuerySelectorAll("tbody tr")[0].QuerySelectorAll("td").Select(td => td.TextContent));
        Assert.Contains("1,195", counts.QuerySelectorAll("tbody tr")[2].TextContent);

        Assert.Equal(5, page.FindAll("[data-testid=stage-chart-warm-up] g[data-series='train ACC'] circle").Count);
        Assert.Equal("val ACC 74.7% at epoch 8", page.FindAll("[data-testid=stage-chart-train] g[data-series='val ACC'] circle title")[^1].TextContent);
        var partition = page.Find("[data-testid=stage-partition]").TextContent;
        Assert.Contains("likely-clean set D_c: 250 samples (5% of the set)", partition);
        Assert.Contains("poisoned in D_c: 13", partition);
        Assert.Contains("AUROC of the consistency score 0.644", partition);
        Assert.Contains("KL threshold 0.7887 (median 2.8817)", partition);
        Assert.Empty(page.FindAll("[data-testid=stage-chart-partition]"));

        // Downloads: the trained model and the per-sample verdicts; the runner's extra step is listed, done.
        Assert.Equal($"api/runs/{run.Id}/artifacts/model", page.Find("[data-testid=download-model]").GetAttribute("href"));
        Assert.Equal($"api/runs/{run.Id}/artifacts/suspected.csv", page.Find("[data-testid=download-suspected]").GetAttribute("href"));
        Assert.DoesNotContain("metrics.csv", page.Find("[data-testid=downloads]").TextContent);
        var steps = page.FindAll("[data-testid=steps] li .wd-step");
        Assert.Equal(Fixtures.Defense("advrbd").Steps.Length + 1, steps.Count);
        Assert.Contains("undefended comparison", steps[^1].TextContent);
        Assert.Contains("1195 of 5000 samples", page.Find("[data-testid=chosen-rule]").TextContent);
    }

    [Fact]
    public void A_training_set_without_truth_says_precision_and_recall_are_unknown()
    {
        var json = JsonNode.Parse(Fixtures.Text("advrbd-run.json"))!;
        json["detection"] = null;
        ServeRun(json.ToJsonString(), Fixtures.Text("advrbd-trajectory.json"));
        var page = Render<RunDetail>(p => p.Add(c => c.Id, Fixtures.AdvrbdRun.Id));
        page.WaitForAssertion(() => Assert.NotEmpty(page.FindAll("[data-testid=metric-cards]")));

        Assert.Empty(page.FindAll("[data-testid=detection]"));
        Assert.Contains("1,195 training samples suspected of 5,000", page.Find("[data-testid=detection-unknown]").TextContent);
    }

    [Fact]
    public void A_post_training_run_keeps_its_trajectory_and_shows_no_training_parts()
    {
        ServeRun(Fixtures.Text("rnp-run.json"), Fixtures.Text("rnp-trajectory.json"));
        var run = Fixtures.RnpRun;
        var page = Render<RunDetail>(p => p.Add(c => c.Id, run.Id));
        page.WaitForAssertion(() => Assert.NotEmpty(page.FindAll("[data-testid=metric-cards]")));

        Assert.False(run.IsTrainingTime);
        Assert.Single(page.FindAll("[data-testid=trajectory-chart] g.marker"));
        Assert.Empty(page.FindAll("[data-testid=stage-chart]"));
        Assert.Empty(page.FindAll("[data-testid=detection]"));
        Assert.Empty(page.FindAll("[data-testid=metric-sides]"));
        Assert.Empty(page.FindAll("[data-testid=download-suspected]"));
        Assert.Contains("metrics.csv", page.Find("[data-testid=downloads]").TextContent);
        Assert.Equal("purified model", page.Find("[data-testid=download-model]").TextContent);
        Assert.Contains("fmnist-smallcnn-badnets.pt", page.Markup);
        Assert.DoesNotContain(Api.Requests, r => r.Path == "/api/datasets");
    }

    [Fact]
    public void The_history_grid_renders_a_training_time_row()
    {
        Render<MudPopoverProvider>();
        var page1 = $$"""{"items":[{{Fixtures.Text("advrbd-run.json")}},{{Fixtures.Text("rnp-run.json")}}],"total":2,"page":1,"pageSize":20}""";
        Api.Json("GET", "/api/defenses", Fixtures.Text("defenses.json"))
            .Json("GET", "/api/models", Fixtures.Text("models.json"))
            .Json("GET", "/api/datasets", Fixtures.Text("poisoned-train-datasets.json"))
            .Json("GET", "/api/runs", page1);
        var page = Render<History>();
        page.WaitForAssertion(() => Assert.Equal(2, page.FindAll("[data-testid=history-grid] tbody tr").Count));

        var rows = page.FindAll("[data-testid=history-grid] tbody tr");
        Assert.Contains("advrbd", rows[0].TextContent);
        Assert.Contains($"smallcnn trained from {Fixtures.PoisonedTrainSet.Name}", rows[0].TextContent);
        Assert.Contains("75.28% → 65.85%", rows[0].TextContent);
        Assert.Contains("56.18% → 8.38%", rows[0].TextContent);
        // The post-training row still names its model.
        Assert.Contains("fmnist-smallcnn-badnets.pt", rows[1].TextContent);
        Assert.Contains("87.04% → 87.04%", rows[1].TextContent);
    }

    [Fact]
    public void Compare_of_two_advrbd_runs_shows_parameters_and_the_scatter()
    {
        var first = JsonNode.Parse(Fixtures.Text("advrbd-run.json"))!;
        var second = first.DeepClone();
        var secondId = Guid.Parse("b8e1d2f3-4a56-4c7b-8d9e-1f2a3b4c5d6e");
        second["id"] = secondId.ToString();
        second["seed"] = 1;
        second["after"]!["acc"] = 0.8;
        second["after"]!["asr"] = 0.02;
        second["resolvedParameters"]!["iterations"] = 2;
        ServeRun(first.ToJsonString(), Fixtures.Text("advrbd-trajectory.json"));
        ServeRun(second.ToJsonString(), Fixtures.Text("advrbd-trajectory.json"));
        Context.Services.GetRequiredService<NavigationManager>().NavigateTo($"compare?ids={Fixtures.AdvrbdRun.Id},{secondId}");
        var page = Render<Compare>();
        page.WaitForAssertion(() => Assert.NotEmpty(page.FindAll("[data-testid=compare-table]")));

        // One point per run after the defense, and their (shared) undefended model.
        var scatter = page.Find("[data-testid=compare-scatter]");
        Assert.Equal(2, scatter.QuerySelectorAll("g.series-group[data-series^=advrbd] circle").Length);
        Assert.Contains("ACC 65.85%, ASR 8.38%", scatter.TextContent);
        Assert.Single(scatter.QuerySelectorAll("g[data-series^=undefended] circle"));

        var table = page.Find("[data-testid=compare-table]");
        var iterations = table.QuerySelectorAll("tbody tr").Single(r => r.QuerySelector("td")!.GetAttribute("data-name") == "iterations");
        Assert.Equal("true", iterations.GetAttribute("data-differs"));
        Assert.Equal(["3", "2"], iterations.QuerySelectorAll("td").Skip(1).Select(td => td.TextContent));
        var model = table.QuerySelectorAll("tbody tr").Single(r => r.QuerySelector("td")!.GetAttribute("data-name") == "model");
        Assert.Equal(["smallcnn (trained)", "smallcnn (trained)"], model.QuerySelectorAll("td").Skip(1).Select(td => td.TextContent));
        Assert.Contains("87.80%", table.QuerySelectorAll("tbody tr").Single(r => r.QuerySelector("td")!.GetAttribute("data-name") == "detection recall").TextContent);
    }

    [Fact]
    public void Runs_and_defenses_of_either_kind_parse_and_requests_carry_only_their_kinds_fields()
    {
        // Post-training JSON from the current server (no "kind"): unchanged.
        var rnp = Fixtures.RnpRun;
        Assert.False(rnp.IsTrainingTime);
        Assert.Equal(Guid.Parse("1e044a43-546e-4875-b040-5f98b2f032c7"), rnp.ModelId);
        Assert.Null(rnp.Detection);
        Assert.All(Fixtures.RnpTrajectory, p => Assert.Null(p.Values));
        Assert.False(Fixtures.Defense("rnp").IsTrainingTime);
        Assert.True(Fixtures.Defense("advrbd").IsTrainingTime);
        Assert.Equal("AdvrBD", Fixtures.Defense("advrbd").ShortTitle);

        var advrbd = Fixtures.AdvrbdRun;
        Assert.True(advrbd.IsTrainingTime);
        Assert.Null(advrbd.ModelId);
        Assert.Equal(new Detection(0.3673640167364017, 0.878, 0.5179941002949853, 1195, 500, 439), advrbd.Detection);
        var enhance3 = Fixtures.AdvrbdTrajectory.Single(p => p is { Phase: "enhance", X: 3 });
        Assert.Equal(0.878, enhance3.Value("recall"));
        Assert.Null(enhance3.Value("candidates"));

        // A live "point" event with values reads into the same point as the trajectory's.
        var point = JsonDocument.Parse($$"""{"point":{{JsonSerializer.Serialize(enhance3, WebDefenseApi.Json)}}}""").RootElement.GetProperty("point").Deserialize<TrajectoryPoint>(WebDefenseApi.Json);
        Assert.Equal(enhance3, point);
        Assert.NotEqual(enhance3 with { Values = new Dictionary<string, double?> { ["recall"] = 0.5 } }, point);

        // A post-training request still names its model and nothing of training-time runs.
        var purify = JsonSerializer.SerializeToElement(new StartRunRequest(rnp.ModelId, "rnp", null, null, null, null, null, null, 0, 0, null), WebDefenseApi.Json);
        Assert.Equal(rnp.ModelId, purify.GetProperty("modelId").GetGuid());
        Assert.False(purify.TryGetProperty("poisonedTrainDatasetId", out _));
        Assert.False(purify.TryGetProperty("architecture", out _));
    }

    [Fact]
    public void Stages_chart_each_phase_but_tell_the_partition_and_skip_the_undefended_phase_for_the_main_trajectory()
    {
        var values = (double acc) => new Dictionary<string, double?> { ["train_acc"] = acc };
        TrajectoryPoint[] points =
        [
            .. Fixtures.AdvrbdTrajectory.Where(p => p.Phase != "undefended"),
            new(1, "epoch", null, null, null, 0.9, null, "undefended", values(0.61)),
            new(2, "epoch", null, null, null, 0.5, null, "undefended", values(0.83)),
        ];

        var stages = StageView.Stages(points);
        Assert.Equal(["warm-up", "enhance", "train", "undefended"], stages.Select(s => s.Phase));
        var undefended = stages.Single(s => s.Phase == "undefended");
        Assert.Equal([61d, 83d], undefended.Series.Single(s => s.Name == "train ACC").Points.Select(p => Math.Round(p.Y, 6)));
        Assert.Equal(["recall", "precision", "ACC on likely-clean", "ACC on the rest", "likely-clean share"], stages.Single(s => s.Phase == "enhance").Series.Select(s => s.Name));
        Assert.Equal("train", TrajectoryView.ChosenPhase(points));

        var chart = Render<StageChart>(p => p.Add(c => c.Points, points));
        Assert.Equal(4, chart.FindAll("svg.wd-chart").Count);
        Assert.Contains("Undefended comparison", chart.Find("[data-testid=stage-undefended]").TextContent);
    }
}
