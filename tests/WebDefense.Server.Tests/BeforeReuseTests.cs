using System.Text.Json;

namespace WebDefense.Server.Tests;

/// <summary>The "before" metrics of a model on the same test sets are measured once and reused by later runs.</summary>
public class BeforeReuseTests
{
    [Fact]
    public async Task A_second_run_on_the_same_model_and_test_sets_reuses_the_first_runs_before_metrics()
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory());
        var client = host.Client();
        var ids = await Api.SetUpAsync(client);
        object Ft(int seed, int target) => new
        {
            modelId = ids.Model, defense = "ft", cleanDatasetId = ids.Clean, testDatasetId = ids.Test, backdoorTestDatasetId = ids.BackdoorTest,
            targetLabel = target, seed, parameters = new Dictionary<string, object> { ["epochs"] = 1, ["scan"] = false },
        };

        var first = await Api.WaitAsync(client, await Api.StartAsync(client, Ft(1, 0)), Api.Finished);
        Assert.Equal("Succeeded", first.GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Null, first.GetProperty("beforeReusedFrom").ValueKind);

        // Another seed, same model, test sets, trigger and target: the before numbers are the first run's, not evaluated again.
        var secondId = await Api.StartAsync(client, Ft(2, 0));
        var second = await Api.WaitAsync(client, secondId, Api.Finished);
        Assert.Equal("Succeeded", second.GetProperty("status").GetString());
        Assert.Equal(first.GetProperty("id").GetGuid(), second.GetProperty("beforeReusedFrom").GetGuid());
        Assert.Equal(first.GetProperty("before").ToString(), second.GetProperty("before").ToString());
        var log = await client.GetStringAsync($"/api/runs/{secondId}/artifacts/log");
        Assert.Contains("not evaluated again", log);
        Assert.Contains("step 1/4: evaluate before", log);
        Assert.Contains("step 4/4: evaluate after", log);

        // A different target label measures ASR differently: evaluated again.
        var third = await Api.WaitAsync(client, await Api.StartAsync(client, Ft(1, 3)), Api.Finished);
        Assert.Equal("Succeeded", third.GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Null, third.GetProperty("beforeReusedFrom").ValueKind);
        Assert.Equal(first.GetProperty("before").GetProperty("acc").GetDouble(), third.GetProperty("before").GetProperty("acc").GetDouble());
        Assert.NotEqual(first.GetProperty("before").GetProperty("asr").GetDouble(), third.GetProperty("before").GetProperty("asr").GetDouble());
    }
}
