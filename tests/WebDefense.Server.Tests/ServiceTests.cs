using System.IO.Compression;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using WebDefense.Core.Data;
using WebDefense.Core.Models;
using WebDefense.Server.Data;

namespace WebDefense.Server.Tests;

public sealed class ServiceTests
{
    [Fact]
    public async Task Upload_run_succeed_download_the_purified_model_and_other_teams_get_404()
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory());
        var client = host.Client();
        var ids = await Api.SetUpAsync(client);
        var defenses = JsonDocument.Parse(await client.GetStringAsync("/api/defenses")).RootElement;
        Assert.Contains(defenses.EnumerateArray(), d => d.GetProperty("name").GetString() == "rnp");
        foreach (var name in new[] { "ft", "fp", "nad", "ft-sam" })
        {
            Assert.Contains(defenses.EnumerateArray(), d => d.GetProperty("name").GetString() == name);
        }

        var runId = await Api.StartAsync(client, Api.RnpRun(ids));
        var run = await Api.WaitAsync(client, runId, Api.Finished);
        Assert.True(run.GetProperty("status").GetString() == "Succeeded", run.ToString());
        Assert.True(run.GetProperty("after").GetProperty("acc").GetDouble() > 0.5);
        Assert.NotEmpty(JsonDocument.Parse(await client.GetStringAsync($"/api/runs/{runId}/trajectory")).RootElement.EnumerateArray());

        var model = await client.GetByteArrayAsync($"/api/runs/{runId}/artifacts/model");
        var path = Path.Combine(host.DataDirectory, "purified.pt");
        await File.WriteAllBytesAsync(path, model);
        using (var loaded = ModelLoader.Load(path, new ModelDeclaration("smallcnn", 10, InputSpec.Create(1, 28, 28))))
        {
            Assert.Equal(ModelFileFormat.PyTorchStateDict, loaded.Format);
        }

        Assert.Contains("after", await client.GetStringAsync($"/api/runs/{runId}/artifacts/metrics.json"));
        Assert.False(string.IsNullOrEmpty(await client.GetStringAsync($"/api/runs/{runId}/artifacts/metrics.csv")));
        using (var zip = new ZipArchive(new MemoryStream(await client.GetByteArrayAsync($"/api/runs/{runId}/artifacts.zip"))))
        {
            Assert.Contains(zip.Entries, e => e.FullName == "metrics.json");
        }

        Assert.StartsWith("event: snapshot", await client.GetStringAsync($"/api/runs/{runId}/events"));

        // What the dashboard reads: queue status, architectures, sample previews with a trigger, sorted lists, CSV.
        var status = JsonDocument.Parse(await client.GetStringAsync("/api/status")).RootElement;
        Assert.Equal(1, status.GetProperty("workers").GetInt32());
        Assert.Equal(0, status.GetProperty("running").GetInt32());
        Assert.True(status.GetProperty("estimatedWaitSeconds").ValueKind == JsonValueKind.Number);
        Assert.Contains("smallcnn", await client.GetStringAsync("/api/models/architectures"));
        var clean = await client.GetByteArrayAsync($"/api/datasets/{ids.Clean}/samples/3.png?scale=2");
        var trigger = Uri.EscapeDataString("""{"type":"patch","size":3}""");
        var triggered = await client.GetByteArrayAsync($"/api/datasets/{ids.Clean}/samples/3.png?scale=2&trigger={trigger}");
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, triggered[..4]);
        Assert.NotEqual(clean, triggered);
        Assert.Equal(HttpStatusCode.BadRequest, (await client.GetAsync($"/api/datasets/{ids.Clean}/samples/100000.png")).StatusCode);
        var badTrigger = await client.GetAsync($"/api/datasets/{ids.Clean}/samples/0.png?trigger={Uri.EscapeDataString("""{"type":"patch","size":99}""")}");
        Assert.Equal(HttpStatusCode.BadRequest, badTrigger.StatusCode);
        Assert.Contains("trigger", await badTrigger.Content.ReadAsStringAsync());
        var sorted = JsonDocument.Parse(await client.GetStringAsync("/api/runs?sort=-afterAsr&pageSize=5")).RootElement;
        Assert.Equal(runId, sorted.GetProperty("items")[0].GetProperty("id").GetGuid());
        var csv = (await client.GetStringAsync("/api/runs/export.csv?defense=rnp")).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("id,batch_id,status,defense,model_id,model_name", csv[0]);
        Assert.Equal(2, csv.Length);
        Assert.StartsWith($"{runId},,Succeeded,rnp,{ids.Model},suspect.pt,", csv[1]);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/api/no-such-endpoint")).StatusCode);

        // Each data-set slot takes only its kind: the test set as clean data (a defense would train on it) and the
        // clean set as the test set are refused by slot, kind given and kind needed, and nothing is queued.
        var swapped = await client.PostAsJsonAsync("/api/runs", new
        {
            modelId = ids.Model, defense = "ft", cleanDatasetId = ids.Test, testDatasetId = ids.Clean, backdoorTestDatasetId = ids.Test, targetLabel = 0,
        });
        var swappedBody = await swapped.Content.ReadAsStringAsync();
        Assert.True(swapped.StatusCode == HttpStatusCode.BadRequest, swappedBody);
        var swappedErrors = JsonDocument.Parse(swappedBody).RootElement.GetProperty("errors");
        Assert.StartsWith("is a test data set; cleanDatasetId takes a data set of kind clean", swappedErrors.GetProperty("cleanDatasetId")[0].GetString());
        Assert.StartsWith("is a clean data set; testDatasetId takes a data set of kind test", swappedErrors.GetProperty("testDatasetId")[0].GetString());
        Assert.StartsWith("is a test data set; backdoorTestDatasetId takes a data set of kind backdoor-test", swappedErrors.GetProperty("backdoorTestDatasetId")[0].GetString());
        Assert.Equal(1, JsonDocument.Parse(await client.GetStringAsync("/api/runs")).RootElement.GetProperty("total").GetInt32());

        // Neither the anonymous health check nor a team's run log shows where the server or its data live.
        var health = await host.CreateClient().GetStringAsync("/health");
        var runLog = await client.GetStringAsync($"/api/runs/{runId}/artifacts/log");
        Assert.Contains("artifacts written: metrics.json", runLog);
        foreach (var (what, text) in new[] { ("health", health), ("run log", runLog) })
        {
            Assert.False(text.Contains(host.DataDirectory, StringComparison.Ordinal), $"{what} shows the data directory: {text}");
            Assert.False(text.Contains(AppContext.BaseDirectory.TrimEnd('/'), StringComparison.Ordinal), $"{what} shows the install directory: {text}");
        }

        // Another team: every id of the first team answers 404.
        var team = JsonDocument.Parse(await (await client.PostAsJsonAsync("/api/admin/teams", new { name = "red" })).Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetGuid();
        var userResponse = await client.PostAsJsonAsync("/api/admin/users", new { email = "eve@red.test", password = "Eve-pass-123!", teamId = team });
        var user = JsonDocument.Parse(await userResponse.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetGuid();
        var key = JsonDocument.Parse(await (await client.PostAsJsonAsync($"/api/admin/users/{user}/keys", new { name = "t" })).Content.ReadAsStringAsync()).RootElement.GetProperty("key").GetString()!;
        var eve = host.Client(key);
        Assert.Equal(HttpStatusCode.Forbidden, (await eve.GetAsync("/api/admin/teams")).StatusCode);
        foreach (var url in new[]
        {
            $"/api/models/{ids.Model}", $"/api/datasets/{ids.Clean}", $"/api/runs/{runId}", $"/api/runs/{runId}/trajectory", $"/api/runs/{runId}/events",
            $"/api/runs/{runId}/artifacts/model", $"/api/runs/{runId}/artifacts/metrics.json", $"/api/runs/{runId}/artifacts/metrics.csv",
            $"/api/runs/{runId}/artifacts/log", $"/api/runs/{runId}/artifacts.zip", $"/api/datasets/{ids.Clean}/samples/0.png",
        })
        {
            Assert.True((await eve.GetAsync(url)).StatusCode == HttpStatusCode.NotFound, url);
        }

        Assert.Equal(HttpStatusCode.NotFound, (await eve.PostAsync($"/api/runs/{runId}/cancel", null)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await eve.PostAsync($"/api/runs/{runId}/rerun", null)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await eve.DeleteAsync($"/api/runs/{runId}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await eve.DeleteAsync($"/api/models/{ids.Model}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await eve.DeleteAsync($"/api/datasets/{ids.Clean}")).StatusCode);
        var start = await eve.PostAsJsonAsync("/api/runs", Api.RnpRun(ids));
        Assert.Equal(HttpStatusCode.BadRequest, start.StatusCode);
        Assert.Equal(0, JsonDocument.Parse(await eve.GetStringAsync("/api/runs")).RootElement.GetProperty("total").GetInt32());
        Assert.Single((await eve.GetStringAsync("/api/runs/export.csv")).Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(0, JsonDocument.Parse(await eve.GetStringAsync("/api/status")).RootElement.GetProperty("teamQueued").GetInt32());
        Assert.Empty(JsonDocument.Parse(await eve.GetStringAsync("/api/models")).RootElement.EnumerateArray());

        // Still used by a run: 409.
        Assert.Equal(HttpStatusCode.Conflict, (await client.DeleteAsync($"/api/models/{ids.Model}")).StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await client.DeleteAsync($"/api/datasets/{ids.Clean}")).StatusCode);
    }

    [Fact]
    public async Task Hostile_or_wrong_uploads_answer_4xx_and_store_nothing()
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory(), maxUploadBytes: 2 * 1024 * 1024);
        var client = host.Client();
        var marker = Path.Combine(host.DataDirectory, "pwned");
        var pickle = new List<byte> { 0x80, 0x02, (byte)'c' };
        pickle.AddRange(Encoding.ASCII.GetBytes("posix\nsystem\n"));
        var command = Encoding.UTF8.GetBytes($"touch {marker}");
        pickle.Add((byte)'X');
        pickle.AddRange(BitConverter.GetBytes(command.Length));
        pickle.AddRange(command);
        pickle.AddRange([0x85, (byte)'R', (byte)'.']);
        var evil = Zip(("archive/data.pkl", pickle.ToArray()), ("archive/version", "3\n"u8.ToArray()));

        var cases = new (Func<Task<HttpResponseMessage>> Send, HttpStatusCode Expected, string What)[]
        {
            (() => Api.UploadModelAsync(client, evil, "evil.pt"), HttpStatusCode.BadRequest, "malicious pickle"),
            (() => Api.UploadModelAsync(client, "not a model at all"u8.ToArray(), "x.pt"), HttpStatusCode.UnsupportedMediaType, "unknown format"),
            (async () => await Api.UploadModelAsync(client, await File.ReadAllBytesAsync(SmallData.ModelPath), "m.pt", shape: "3,32,32"), HttpStatusCode.BadRequest, "wrong shape"),
            (async () => await Api.UploadModelAsync(client, await File.ReadAllBytesAsync(SmallData.ModelPath), "m.pt", architecture: "preactresnet18"), HttpStatusCode.BadRequest, "wrong architecture"),
            (() => Api.UploadModelAsync(client, new byte[3 * 1024 * 1024], "big.pt"), HttpStatusCode.RequestEntityTooLarge, "oversized model"),
            (() => Api.UploadDatasetAsync(client, Zip(("../../evil/a.png", Png()), ("b/../../x.png", Png())), "t.zip", "clean"), HttpStatusCode.BadRequest, "zip traversal"),
            (() => Api.UploadDatasetAsync(client, new byte[3 * 1024 * 1024], "big.npz", "clean"), HttpStatusCode.RequestEntityTooLarge, "oversized data set"),
            (async () => await Api.UploadDatasetAsync(client, await File.ReadAllBytesAsync(SmallData.PathOf("test")), "t.npz", "bogus"), HttpStatusCode.BadRequest, "unknown kind"),
        };
        foreach (var (send, expected, what) in cases)
        {
            var response = await send();
            Assert.True(expected == response.StatusCode, $"{what}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        }

        Assert.False(File.Exists(marker));
        Assert.Equal(0, host.Db(db => db.Models.Count() + db.Datasets.Count()));
        var artifacts = Path.Combine(host.DataDirectory, "artifacts");
        Assert.Empty(Directory.Exists(artifacts) ? Directory.GetFiles(artifacts) : []);
        var temp = Path.Combine(host.DataDirectory, "tmp");
        Assert.Empty(Directory.Exists(temp) ? Directory.GetFiles(temp, "*", SearchOption.AllDirectories) : []);
        Assert.False(Directory.Exists(Path.Combine(host.DataDirectory, "..", "evil")));
    }

    [Fact]
    public async Task Impossible_run_requests_answer_400_at_once()
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory());
        var client = host.Client();
        var ids = await Api.SetUpAsync(client);
        async Task<string> Bad(object request)
        {
            var response = await client.PostAsJsonAsync("/api/runs", request);
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, body);
            return body;
        }

        Assert.Contains("backdoorSamplesDatasetId", await Bad(new { modelId = ids.Model, defense = "grad-prune", cleanDatasetId = ids.Clean, parameters = new { scan = false } }));
        Assert.Contains("parameters.nope", await Bad(new { modelId = ids.Model, defense = "rnp", cleanDatasetId = ids.Clean, parameters = new { nope = 1 } }));
        Assert.Contains("defense", await Bad(new { modelId = ids.Model, defense = "magic", cleanDatasetId = ids.Clean }));
        Assert.Contains("trigger", await Bad(new { modelId = ids.Model, defense = "grad-prune", cleanDatasetId = ids.Clean, trigger = new { type = "nonsense" } }));
        Assert.Contains("cleanDatasetId", await Bad(new { modelId = ids.Model, defense = "rnp" }));
        Assert.Equal(0, host.Db(db => db.Runs.Count()));
    }

    [Fact]
    public async Task A_data_free_defense_runs_without_a_clean_set()
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory());
        var client = host.Client();
        var ids = await Api.SetUpAsync(client);
        var runId = await Api.StartAsync(client, new
        {
            modelId = ids.Model, defense = "clp", testDatasetId = ids.Test, backdoorTestDatasetId = ids.BackdoorTest, targetLabel = 0, seed = 1,
        });
        var run = await Api.WaitAsync(client, runId, Api.Finished, 120);
        Assert.True(run.GetProperty("status").GetString() == "Succeeded", run.GetRawText());
        Assert.Equal(JsonValueKind.Null, run.GetProperty("cleanDatasetId").ValueKind);
        Assert.Equal(3.0, run.GetProperty("resolvedParameters").GetProperty("u").GetDouble());
        Assert.True(run.GetProperty("after").GetProperty("acc").GetDouble() > 0.1);
        Assert.Contains("runs data-free", await client.GetStringAsync($"/api/runs/{runId}/artifacts/log"));
        // The sweep has no validation scores without data.
        using var trajectory = JsonDocument.Parse(await client.GetStringAsync($"/api/runs/{runId}/trajectory"));
        Assert.NotEmpty(trajectory.RootElement.EnumerateArray());
        Assert.All(trajectory.RootElement.EnumerateArray(), p => Assert.False(p.TryGetProperty("valAcc", out var acc) && acc.ValueKind == JsonValueKind.Number));
    }

    [Fact]
    public async Task An_image_zip_uploaded_with_resize_is_read_at_that_size_by_the_worker()
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory());
        var client = host.Client();
        var ids = await Api.SetUpAsync(client);
        // 100 test images padded to 32×32 PNGs in class folders; uploaded with resize=28,28 for the 28×28 model.
        var zip = new MemoryStream();
        using (var test = DatasetReader.Read(await File.ReadAllBytesAsync(SmallData.PathOf("test")), "test.npz"))
        using (var archive = new System.IO.Compression.ZipArchive(zip, System.IO.Compression.ZipArchiveMode.Create, leaveOpen: true))
        {
            var labels = test.Data.Labels.data<long>().ToArray();
            for (var i = 0; i < 100; i++)
            {
                using var padded = TorchSharp.torch.nn.functional.pad(test.Data.Images[i], [2, 2, 2, 2]);
                await using var entry = await archive.CreateEntry($"{labels[i]}/{i:D3}.png").OpenAsync();
                await entry.WriteAsync(ImageCodec.EncodePng(padded));
            }
        }

        using var form = new MultipartFormDataContent
        {
            { new ByteArrayContent(zip.ToArray()), "file", "test32.zip" }, { new StringContent("test"), "kind" },
            { new StringContent("1"), "channels" }, { new StringContent("28,28"), "resize" },
        };
        var upload = await client.PostAsync("/api/datasets", form);
        var dataset = JsonDocument.Parse(await upload.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(new[] { 1, 28, 28 }, dataset.GetProperty("shape").EnumerateArray().Select(x => x.GetInt32()));

        var runId = await Api.StartAsync(client, new { modelId = ids.Model, defense = "clp", testDatasetId = dataset.GetProperty("id").GetGuid(), seed = 1 });
        var run = await Api.WaitAsync(client, runId, Api.Finished, 120);
        Assert.True(run.GetProperty("status").GetString() == "Succeeded", run.GetRawText());
        Assert.InRange(run.GetProperty("before").GetProperty("acc").GetDouble(), 0.3, 1.0);
        Assert.Contains("test set: 100 images of 1×28×28 from test32.zip", await client.GetStringAsync($"/api/runs/{runId}/artifacts/log"));
    }

    [Fact]
    public async Task A_running_run_is_cancelled_promptly()
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory());
        var client = host.Client();
        var ids = await Api.SetUpAsync(client);
        var runId = await Api.StartAsync(client, Api.RnpRun(ids, epochs: 50));
        await Api.WaitAsync(client, runId, r => r.GetProperty("status").GetString() == "Running" && r.GetProperty("progress").GetDouble() > 0, 120);
        var started = DateTime.UtcNow;
        Assert.Equal(HttpStatusCode.Accepted, (await client.PostAsync($"/api/runs/{runId}/cancel", null)).StatusCode);
        var run = await Api.WaitAsync(client, runId, Api.Finished, 60);
        Assert.Equal("Cancelled", run.GetProperty("status").GetString());
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(30));
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health")).StatusCode);
    }

    [Fact]
    public async Task A_run_left_running_completes_after_a_new_host_starts()
    {
        var directory = ServiceHost.NewDataDirectory();
        (Guid Model, Guid Clean, Guid Test, Guid BackdoorTest) ids;
        Guid runId;
        using (var first = new ServiceHost(directory))
        {
            var client = first.Client();
            ids = await Api.SetUpAsync(client);
            var team = first.Db(db => db.Models.Single().TeamId);
            var run = new RunRecord
            {
                TeamId = team, ModelId = ids.Model, Defense = "rnp", Status = RunStatus.Running, CleanDatasetId = ids.Clean, TestDatasetId = ids.Test,
                BackdoorTestDatasetId = ids.BackdoorTest, TargetLabel = 0, Seed = 3, StartedAt = DateTimeOffset.UtcNow,
                RequestedParameters = "{\"unlearning_epochs\":1,\"recovering_epochs\":1,\"batch_size\":64}",
            };
            first.Db(db =>
            {
                db.Runs.Add(run);
                return db.SaveChanges();
            });
            runId = run.Id;
        }

        using var second = new ServiceHost(directory);
        var done = await Api.WaitAsync(second.Client(), runId, Api.Finished);
        Assert.True(done.GetProperty("status").GetString() == "Succeeded", done.ToString());
    }

    [Fact]
    public async Task A_worker_that_cannot_read_its_model_fails_the_run_and_the_api_keeps_answering()
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory());
        var client = host.Client();
        var ids = await Api.SetUpAsync(client);
        var stored = host.Db(db => db.Models.Single().StoredName);
        await File.WriteAllBytesAsync(Path.Combine(host.DataDirectory, "artifacts", stored), "PK\u0003\u0004 corrupted after upload"u8.ToArray());
        var runId = await Api.StartAsync(client, Api.RnpRun(ids));
        var run = await Api.WaitAsync(client, runId, Api.Finished, 120);
        Assert.Equal("Failed", run.GetProperty("status").GetString());
        Assert.False(string.IsNullOrEmpty(run.GetProperty("error").GetString()));
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/api/models")).StatusCode);
    }

    private static byte[] Zip(params (string Name, byte[] Content)[] entries)
    {
        var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var (name, content) in entries)
            {
                using var s = zip.CreateEntry(name).Open();
                s.Write(content);
            }
        }

        return ms.ToArray();
    }

    private static byte[] Png() => Convert.FromBase64String("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg==");
}
