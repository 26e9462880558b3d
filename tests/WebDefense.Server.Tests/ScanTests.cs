using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using WebDefense.Core.Data.Triggers;

namespace WebDefense.Server.Tests;

/// <summary>The backdoor scan through the API: a scan run, and a defense run without backdoor samples that scans first.</summary>
public sealed class ScanTests
{
    [Fact]
    public async Task A_scan_run_names_the_demo_target_and_serves_the_reconstructed_trigger()
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory());
        var client = host.Client();
        var ids = await Api.SetUpAsync(client);
        var defenses = JsonDocument.Parse(await client.GetStringAsync("/api/defenses")).RootElement;
        Assert.Contains(defenses.EnumerateArray(), d => d.GetProperty("name").GetString() == "scan" && d.GetProperty("kind").GetString() == "scan");

        var runId = await Api.StartAsync(client, new
        {
            modelId = ids.Model, defense = "scan", cleanDatasetId = ids.Clean, testDatasetId = ids.Test, backdoorTestDatasetId = ids.BackdoorTest,
            targetLabel = 0, seed = 1,
        });
        var run = await Api.WaitAsync(client, runId, Api.Finished, seconds: 600);
        Assert.True(run.GetProperty("status").GetString() == "Succeeded", run.ToString());
        Assert.Equal("scan", run.GetProperty("kind").GetString());
        var scan = run.GetProperty("scan");
        Assert.True(scan.GetProperty("suspected").GetBoolean(), scan.ToString());
        Assert.Equal(0, scan.GetProperty("targetLabel").GetInt32());
        Assert.Equal(10, scan.GetProperty("labels").GetArrayLength());
        Assert.True(run.GetProperty("before").GetProperty("asr").GetDouble() > 0.9); // the real trigger, for comparison
        Assert.Equal(10, JsonDocument.Parse(await client.GetStringAsync($"/api/runs/{runId}/trajectory")).RootElement.GetArrayLength());

        // scan.json carries the reconstructed trigger as a trigger spec the API takes back.
        var report = JsonDocument.Parse(await client.GetStringAsync($"/api/runs/{runId}/artifacts/scan/scan.json")).RootElement;
        var trigger = Assert.IsType<MaskTrigger>(TriggerSpec.FromJson(report.GetProperty("trigger").GetString()!));
        Assert.True(trigger.MaskNorm() < 20, $"mask of {trigger.MaskNorm():0.0} px");
        var png = await client.GetAsync($"/api/runs/{runId}/artifacts/scan/trigger-0-mask.png");
        Assert.Equal("image/png", png.Content.Headers.ContentType?.MediaType);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, (await png.Content.ReadAsByteArrayAsync())[..4]);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync($"/api/runs/{runId}/artifacts/scan/..%2Fmetrics.json")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync($"/api/runs/{runId}/artifacts/model")).StatusCode);
        Assert.Equal(1, JsonDocument.Parse(await client.GetStringAsync("/api/runs?kind=scan")).RootElement.GetProperty("total").GetInt32());

        // A scan takes no backdoor samples.
        var refused = await client.PostAsJsonAsync("/api/runs", new { modelId = ids.Model, defense = "scan", cleanDatasetId = ids.Clean, backdoorSamplesDatasetId = ids.BackdoorTest });
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Contains("backdoorSamplesDatasetId", await refused.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_defense_without_backdoor_samples_scans_first_and_reports_an_estimated_outcome()
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory());
        var client = host.Client();
        var ids = await Api.SetUpAsync(client);
        // No trigger, no triggered images, no backdoor test set: only the scan can say what happened to the backdoor.
        var runId = await Api.StartAsync(client, new
        {
            modelId = ids.Model, defense = "ft", cleanDatasetId = ids.Clean, testDatasetId = ids.Test, seed = 1,
            parameters = new Dictionary<string, object> { ["epochs"] = 2 },
        });
        var run = await Api.WaitAsync(client, runId, Api.Finished, seconds: 600);
        Assert.True(run.GetProperty("status").GetString() == "Succeeded", run.ToString());
        var outcome = run.GetProperty("outcome");
        Assert.Equal("estimated", outcome.GetProperty("basis").GetString());
        Assert.Contains(outcome.GetProperty("outcome").GetString(), new[] { "removed", "reduced", "still-present" });
        Assert.True(outcome.GetProperty("estimatedAsrBefore").GetDouble() > 0.8, outcome.ToString());
        Assert.True(outcome.GetProperty("modelChanged").GetBoolean());
        Assert.Contains("estimated ASR", outcome.GetProperty("summary").GetString());
        Assert.Equal(0, run.GetProperty("scan").GetProperty("targetLabel").GetInt32());
        Assert.Equal(JsonValueKind.Null, run.GetProperty("after").GetProperty("asr").ValueKind);

        // The trajectory carries the estimate as its own series, never as the measured validation ASR.
        var points = JsonDocument.Parse(await client.GetStringAsync($"/api/runs/{runId}/trajectory")).RootElement.EnumerateArray().ToList();
        Assert.All(points, p => Assert.True(!p.TryGetProperty("valAsr", out var v) || v.ValueKind == JsonValueKind.Null));
        Assert.Contains(points, p => p.TryGetProperty("values", out var v) && v.ValueKind == JsonValueKind.Object && v.TryGetProperty("estimated_val_asr", out _));
        Assert.Equal("image/png", (await client.GetAsync($"/api/runs/{runId}/artifacts/scan/trigger-0-example.png")).Content.Headers.ContentType?.MediaType);

        var csv = (await client.GetStringAsync("/api/runs/export.csv")).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        // The outcome columns come last and never need quoting (the chosen rule before them does).
        Assert.EndsWith(",outcome,outcome_basis,model_changed,estimated_asr_before,estimated_asr_after", csv[0]);
        var row = csv[1].Split(',');
        Assert.Equal([outcome.GetProperty("outcome").GetString()!, "estimated", "true"], row[^5..^2]);

        // Grad-Prune is accepted without backdoor samples while the scan is on, and refused with it off.
        var off = await client.PostAsJsonAsync("/api/runs", new
        {
            modelId = ids.Model, defense = "grad-prune", cleanDatasetId = ids.Clean, parameters = new Dictionary<string, object> { ["scan"] = false },
        });
        Assert.Equal(HttpStatusCode.BadRequest, off.StatusCode);
        Assert.Contains("backdoor samples", await off.Content.ReadAsStringAsync());
    }
}
