using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using WebDefense.Core.Runs;
using WebDefense.Server.Jobs;

namespace WebDefense.Server.Tests;

/// <summary>One team cannot fill the queue for all: a cap on its active runs, turns across teams, and a batch cancelled in one call.</summary>
public class QueueTests
{
    [Fact]
    public async Task Teams_take_turns_so_one_team_s_batch_does_not_hold_up_another_team_s_run()
    {
        var executor = new GatedExecutor();
        using var service = new ServiceHost(ServiceHost.NewDataDirectory());
        using var host = service.WithWebHostBuilder(b => b.ConfigureTestServices(s => s.AddSingleton<IRunExecutor>(executor)));
        HttpClient Client(string key)
        {
            var c = host.CreateClient();
            c.DefaultRequestHeaders.Add("X-Api-Key", key);
            return c;
        }

        var red = Client(ServiceHost.AdminKey);
        var redIds = await Api.SetUpAsync(red);
        var teamId = await Api.IdAsync(await red.PostAsJsonAsync("/api/admin/teams", new { name = "blue" }));
        var userId = await Api.IdAsync(await red.PostAsJsonAsync("/api/admin/users", new { email = "bo@blue.test", password = "Bo-pass-123!", teamId }));
        var key = JsonDocument.Parse(await (await red.PostAsJsonAsync($"/api/admin/users/{userId}/keys", new { name = "k" })).Content.ReadAsStringAsync())
            .RootElement.GetProperty("key").GetString()!;
        var blue = Client(key);
        var blueIds = await Api.SetUpAsync(blue);
        object Runs((Guid Model, Guid Clean, Guid Test, Guid BackdoorTest) ids, params int[] seeds) =>
            new { modelId = ids.Model, defense = "ft", cleanDatasetId = ids.Clean, seeds, parameters = new Dictionary<string, object> { ["scan"] = false } };
        async Task<int> AheadAsync(HttpClient c) => JsonDocument.Parse(await c.GetStringAsync("/api/status")).RootElement.GetProperty("runsAhead").GetInt32();

        // Red queues three; its first one starts and holds the only worker.
        var redRuns = JsonDocument.Parse(await (await red.PostAsJsonAsync("/api/runs", Runs(redIds, 1, 2, 3))).Content.ReadAsStringAsync())
            .RootElement.GetProperty("runIds").EnumerateArray().Select(r => r.GetGuid()).ToList();
        await executor.WaitForStartsAsync(1);
        Assert.Equal(2, await AheadAsync(red)); // red's own two queued runs
        Assert.Equal(0, await AheadAsync(blue)); // blue has had no turn yet: its run would go next

        var blueRun = (await Api.StartAsync(blue, Runs(blueIds, 7)));
        Assert.Equal(2, await AheadAsync(blue)); // its queued run, then red's turn, then the next

        // Blue's run goes second, not after red's whole batch.
        for (var started = 2; started <= 4; started++)
        {
            executor.ReleaseOne();
            await executor.WaitForStartsAsync(started);
        }

        executor.ReleaseOne();
        Assert.Equal([redRuns[0], blueRun, redRuns[1], redRuns[2]], executor.Started);
        await Api.WaitAsync(red, redRuns[2], Api.Finished, seconds: 60);
    }

    /// <summary>Records the order in which runs start; each holds the worker until the test releases it.</summary>
    private sealed class GatedExecutor : IRunExecutor
    {
        private readonly SemaphoreSlim _release = new(0);

        public List<Guid> Started { get; } = [];

        public async Task<RunExecutionResult> ExecuteAsync(RunSpec spec, Func<RunEvent, Task> onEvent, CancellationToken cancellation)
        {
            lock (Started) Started.Add(spec.RunId);
            await _release.WaitAsync(cancellation);
            return new RunExecutionResult(false, false, null, "held and released by the test");
        }

        public void ReleaseOne() => _release.Release();

        public async Task WaitForStartsAsync(int count)
        {
            for (var i = 0; i < 600 && Started.Count < count; i++) await Task.Delay(100);
            Assert.True(Started.Count >= count, $"{Started.Count} run(s) started, expected {count}");
        }
    }

    [Fact]
    public async Task A_team_is_capped_at_its_active_runs_and_a_batch_is_cancelled_in_one_call()
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory(), settings: new Dictionary<string, string> { ["WebDefense:MaxActiveRunsPerTeam"] = "3" });
        var client = host.Client();
        var ids = await Api.SetUpAsync(client);
        // Long enough to stay queued or running while the test looks (each is cancelled below).
        object Runs(params int[] seeds) => new
        {
            modelId = ids.Model, defense = "ft", cleanDatasetId = ids.Clean, seeds,
            parameters = new Dictionary<string, object> { ["epochs"] = 1000, ["scan"] = false },
        };

        // Four at once exceed the cap of three: 429 with the numbers, and nothing is queued.
        var tooMany = await client.PostAsJsonAsync("/api/runs", Runs(1, 2, 3, 4));
        var body = await tooMany.Content.ReadAsStringAsync();
        Assert.True(tooMany.StatusCode == HttpStatusCode.TooManyRequests, body);
        var problem = JsonDocument.Parse(body).RootElement;
        Assert.Equal(3, problem.GetProperty("cap").GetInt32());
        Assert.Equal(0, problem.GetProperty("active").GetInt32());
        Assert.Equal(4, problem.GetProperty("requested").GetInt32());
        Assert.Contains("at most 3 at once", problem.GetProperty("detail").GetString());
        Assert.Equal(0, JsonDocument.Parse(await client.GetStringAsync("/api/runs")).RootElement.GetProperty("total").GetInt32());

        // Three fit; a fourth, alone, does not while they are active.
        var started = JsonDocument.Parse(await (await client.PostAsJsonAsync("/api/runs", Runs(1, 2, 3))).Content.ReadAsStringAsync()).RootElement;
        var batch = started.GetProperty("batchId").GetGuid();
        var one = await client.PostAsJsonAsync("/api/runs", Runs(9));
        Assert.Equal(HttpStatusCode.TooManyRequests, one.StatusCode);
        Assert.Equal(3, JsonDocument.Parse(await one.Content.ReadAsStringAsync()).RootElement.GetProperty("active").GetInt32());

        // One call cancels the whole batch, running and queued alike; another team's call finds nothing.
        var cancel = await client.PostAsync($"/api/batches/{batch}/cancel", null);
        var cancelBody = JsonDocument.Parse(await cancel.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
        Assert.Equal(3, cancelBody.GetProperty("cancelled").GetArrayLength());
        Assert.Equal(0, cancelBody.GetProperty("alreadyFinished").GetInt32());
        foreach (var id in started.GetProperty("runIds").EnumerateArray().Select(r => r.GetGuid()))
        {
            Assert.Equal("Cancelled", (await Api.WaitAsync(client, id, Api.Finished, seconds: 60)).GetProperty("status").GetString());
        }

        Assert.Equal(HttpStatusCode.NotFound, (await client.PostAsync($"/api/batches/{Guid.NewGuid()}/cancel", null)).StatusCode);
        var again = await client.PostAsync($"/api/batches/{batch}/cancel", null);
        Assert.Equal(3, JsonDocument.Parse(await again.Content.ReadAsStringAsync()).RootElement.GetProperty("alreadyFinished").GetInt32());

        // With the batch gone, the team has room again.
        var after = await client.PostAsJsonAsync("/api/runs", Runs(9));
        Assert.Equal(HttpStatusCode.Accepted, after.StatusCode);
        var last = JsonDocument.Parse(await after.Content.ReadAsStringAsync()).RootElement.GetProperty("runIds")[0].GetGuid();
        await client.PostAsync($"/api/runs/{last}/cancel", null);
        await Api.WaitAsync(client, last, Api.Finished, seconds: 60);
    }

    [Fact]
    public async Task The_login_cookies_keys_live_in_the_data_directory()
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory());
        var client = host.CreateClient();
        var login = await client.PostAsJsonAsync("/api/auth/login", new { email = "admin@webdefense.local", password = "Admin-pass-123!" });
        Assert.True(login.IsSuccessStatusCode, await login.Content.ReadAsStringAsync());
        // A rebuild, a new container or a second web process on the same data directory keeps the session valid.
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(host.DataDirectory, "keys"), "key-*.xml"));
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/api/auth/me")).StatusCode);
    }

    [Fact]
    public async Task Only_admins_see_which_host_and_process_executed_a_run()
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory());
        var admin = host.Client();
        var ids = await Api.SetUpAsync(admin);
        var me = JsonDocument.Parse(await admin.GetStringAsync("/api/auth/me")).RootElement;
        var user = JsonDocument.Parse(await (await admin.PostAsJsonAsync("/api/admin/users",
            new { email = "member@default.test", password = "Member-pass-123!", teamId = me.GetProperty("teamId").GetGuid() })).Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetGuid();
        var key = JsonDocument.Parse(await (await admin.PostAsJsonAsync($"/api/admin/users/{user}/keys", new { name = "m" })).Content.ReadAsStringAsync()).RootElement.GetProperty("key").GetString()!;
        var member = host.Client(key);
        var runId = await Api.StartAsync(member, new
        {
            modelId = ids.Model, defense = "ft", cleanDatasetId = ids.Clean, seed = 1, parameters = new Dictionary<string, object> { ["epochs"] = 1, ["scan"] = false },
        });
        await Api.WaitAsync(member, runId, Api.Finished);
        Assert.Equal(JsonValueKind.Null, (await Api.RunAsync(member, runId)).GetProperty("worker").ValueKind);
        Assert.Equal(JsonValueKind.Null, JsonDocument.Parse(await member.GetStringAsync("/api/runs")).RootElement.GetProperty("items")[0].GetProperty("worker").ValueKind);
        Assert.Contains(":", (await Api.RunAsync(admin, runId)).GetProperty("worker").GetString());
    }
}
