using System.IO.Compression;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using WebDefense.Core.Data;
using WebDefense.Core.Models;
using WebDefense.Server.Data;

namespace WebDefense.Server.Tests;

/// <summary>
/// The training-time job kind (AdvrBD) through the public API: a poisoned-train data set with the attack lab's truth, an
/// architecture instead of a model, the trained model and the suspected samples out, detection precision/recall
/// recorded. Tiny schedules: the Core tests check what the defense achieves; this checks the service path.
/// </summary>
public sealed class TrainingRunTests
{
    private const int PoisonedPerClass = 60;

    private static Dictionary<string, object> TinySchedule => new()
    {
        ["warmup_epochs"] = 1, ["iterations"] = 1, ["pgd_steps"] = 1, ["epochs"] = 1, ["unlearn_max_epochs"] = 1, ["batch_size"] = 64,
    };

    private static async Task<Guid> UploadPoisonedTrainAsync(HttpClient client) =>
        await Api.IdAsync(await Api.UploadDatasetAsync(client, await File.ReadAllBytesAsync(SmallData.PathOf("poisoned-train")), "poisoned.npz", "poisoned-train"));

    [Fact]
    public async Task Advrbd_trains_from_a_poisoned_set_reports_detection_and_serves_the_suspects_to_its_team_only()
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory());
        var client = host.Client();
        var ids = await Api.SetUpAsync(client);
        var train = await UploadPoisonedTrainAsync(client);

        var defenses = JsonDocument.Parse(await client.GetStringAsync("/api/defenses")).RootElement.EnumerateArray().ToList();
        var advrbd = defenses.Single(d => d.GetProperty("name").GetString() == "advrbd");
        Assert.Equal("training-time", advrbd.GetProperty("kind").GetString());
        Assert.Equal("PoisonedTrainingSet", advrbd.GetProperty("needs")[0].GetString());
        Assert.Equal("post-training", defenses.Single(d => d.GetProperty("name").GetString() == "rnp").GetProperty("kind").GetString());
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/api/defenses/advrbd")).StatusCode);

        var runId = await Api.StartAsync(client, new
        {
            defense = "advrbd", poisonedTrainDatasetId = train, architecture = "SmallCNN", parameters = TinySchedule,
            testDatasetId = ids.Test, backdoorTestDatasetId = ids.BackdoorTest, targetLabel = 0, seed = 3,
        });
        var run = await Api.WaitAsync(client, runId, Api.Finished, seconds: 300);
        Assert.True(run.GetProperty("status").GetString() == "Succeeded", run.ToString());
        Assert.Equal("training-time", run.GetProperty("kind").GetString());
        Assert.Equal(JsonValueKind.Null, run.GetProperty("modelId").ValueKind);
        Assert.Equal("smallcnn", run.GetProperty("architecture").GetString());
        Assert.Equal(10, run.GetProperty("numClasses").GetInt32());
        Assert.Equal(train, run.GetProperty("poisonedTrainDatasetId").GetGuid());
        Assert.Equal("cpu", run.GetProperty("device").GetString());
        foreach (var stage in new[] { "before", "after" })
        {
            Assert.InRange(run.GetProperty(stage).GetProperty("acc").GetDouble(), 0.1, 1.0);
            Assert.Equal(JsonValueKind.Number, run.GetProperty(stage).GetProperty("asr").ValueKind);
        }

        // The demo's training set: 600 images, 10% BadNets-poisoned, the truth in the .npz.
        var detection = run.GetProperty("detection");
        Assert.Equal(PoisonedPerClass, detection.GetProperty("poisoned").GetInt32());
        var suspected = detection.GetProperty("suspected").GetInt32();
        var truePositives = detection.GetProperty("truePositives").GetInt32();
        Assert.Equal(suspected, run.GetProperty("findings").GetProperty("suspected").GetInt32());
        Assert.Equal(suspected == 0 ? 0 : (double)truePositives / suspected, detection.GetProperty("precision").GetDouble(), 9);
        Assert.Equal((double)truePositives / PoisonedPerClass, detection.GetProperty("recall").GetDouble(), 9);

        var points = JsonDocument.Parse(await client.GetStringAsync($"/api/runs/{runId}/trajectory")).RootElement.EnumerateArray().ToList();
        var phases = points.Select(p => p.GetProperty("phase").GetString()).Distinct().ToList();
        Assert.Equal(["warm-up", "partition", "enhance", "train", "undefended"], phases);
        var enhance = points.Single(p => p.GetProperty("phase").GetString() == "enhance");
        Assert.Equal(detection.GetProperty("recall").GetDouble(), enhance.GetProperty("values").GetProperty("recall").GetDouble(), 9);

        // suspected.csv: one row per training sample; its flags are the suspects, its truth column the attack lab's.
        var response = await client.GetAsync($"/api/runs/{runId}/artifacts/suspected.csv");
        Assert.Equal("text/csv", response.Content.Headers.ContentType?.MediaType);
        var rows = (await response.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("index,label,suspected,suspicion,consistency_kl,poisoned", rows[0]);
        Assert.Equal(10 * PoisonedPerClass, rows.Length - 1);
        var cells = rows.Skip(1).Select(r => r.Split(',')).ToList();
        Assert.Equal(suspected, cells.Count(c => c[2] == "1"));
        Assert.Equal(PoisonedPerClass, cells.Count(c => c[5] == "1"));
        Assert.Equal(truePositives, cells.Count(c => c[2] == "1" && c[5] == "1"));

        var model = await client.GetAsync($"/api/runs/{runId}/artifacts/model");
        Assert.Equal($"trained-{runId:N}.pt", model.Content.Headers.ContentDisposition?.FileNameStar ?? model.Content.Headers.ContentDisposition?.FileName);
        var path = Path.Combine(host.DataDirectory, "trained.pt");
        await File.WriteAllBytesAsync(path, await model.Content.ReadAsByteArrayAsync());
        using (var loaded = ModelLoader.Load(path, new ModelDeclaration("smallcnn", 10, InputSpec.Create(1, 28, 28))))
        {
            Assert.Equal(ModelFileFormat.PyTorchStateDict, loaded.Format);
        }

        using (var zip = new ZipArchive(new MemoryStream(await client.GetByteArrayAsync($"/api/runs/{runId}/artifacts.zip"))))
        {
            Assert.Contains(zip.Entries, e => e.FullName == "suspected.csv");
        }

        // History: the kind filter, and the CSV export's training-time columns.
        var postRun = await Api.StartAsync(client, new { modelId = ids.Model, defense = "clp", testDatasetId = ids.Test, seed = 0 });
        var list = JsonDocument.Parse(await client.GetStringAsync("/api/runs?kind=training-time")).RootElement;
        Assert.Equal(runId, Assert.Single(list.GetProperty("items").EnumerateArray()).GetProperty("id").GetGuid());
        Assert.Equal(postRun, Assert.Single(JsonDocument.Parse(await client.GetStringAsync("/api/runs?kind=post-training")).RootElement.GetProperty("items").EnumerateArray()).GetProperty("id").GetGuid());
        var csv = (await client.GetStringAsync("/api/runs/export.csv?defense=advrbd")).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.EndsWith(",kind,architecture,poisoned_train_dataset_id,suspected,detection_precision,detection_recall,outcome,outcome_basis,model_changed,estimated_asr_before,estimated_asr_after", csv[0]);
        Assert.Contains($",training-time,smallcnn,{train},{suspected},", csv[1]);
        Assert.StartsWith($"{runId},,Succeeded,advrbd,,,3,0,", csv[1]);

        // The training set is in use; the rerun takes the same inputs.
        Assert.Equal(HttpStatusCode.Conflict, (await client.DeleteAsync($"/api/datasets/{train}")).StatusCode);
        var rerun = await client.PostAsync($"/api/runs/{runId}/rerun", null);
        Assert.Equal(HttpStatusCode.Accepted, rerun.StatusCode);
        var rerunId = JsonDocument.Parse(await rerun.Content.ReadAsStringAsync()).RootElement.GetProperty("runIds")[0].GetGuid();
        var second = await Api.RunAsync(client, rerunId);
        Assert.Equal(train, second.GetProperty("poisonedTrainDatasetId").GetGuid());
        Assert.Equal("training-time", second.GetProperty("kind").GetString());
        await client.PostAsync($"/api/runs/{rerunId}/cancel", null);

        // Another team sees none of it.
        var team = JsonDocument.Parse(await (await client.PostAsJsonAsync("/api/admin/teams", new { name = "red" })).Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetGuid();
        var user = JsonDocument.Parse(await (await client.PostAsJsonAsync("/api/admin/users", new { email = "eve@red.test", password = "Eve-pass-123!", teamId = team })).Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetGuid();
        var key = JsonDocument.Parse(await (await client.PostAsJsonAsync($"/api/admin/users/{user}/keys", new { name = "t" })).Content.ReadAsStringAsync()).RootElement.GetProperty("key").GetString()!;
        var eve = host.Client(key);
        foreach (var url in new[] { $"/api/runs/{runId}", $"/api/runs/{runId}/artifacts/suspected.csv", $"/api/runs/{runId}/artifacts/model", $"/api/datasets/{train}" })
        {
            Assert.True((await eve.GetAsync(url)).StatusCode == HttpStatusCode.NotFound, url);
        }

        var stolen = await eve.PostAsJsonAsync("/api/runs", new { defense = "advrbd", poisonedTrainDatasetId = train, architecture = "smallcnn" });
        Assert.Equal(HttpStatusCode.BadRequest, stolen.StatusCode);
        Assert.Contains("no such data set", await stolen.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Impossible_training_time_requests_and_inconsistent_truth_answer_4xx_and_store_nothing()
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory());
        var client = host.Client();
        var ids = await Api.SetUpAsync(client);
        var train = await UploadPoisonedTrainAsync(client);

        async Task<JsonElement> Rejected(object request)
        {
            var response = await client.PostAsJsonAsync("/api/runs", request);
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, body);
            return JsonDocument.Parse(body).RootElement.GetProperty("errors");
        }

        static string Error(JsonElement errors, string field) => errors.TryGetProperty(field, out var e) ? e[0].GetString()! : $"(no error for {field}: {errors})";

        var errors = await Rejected(new { defense = "advrbd", modelId = ids.Model, poisonedTrainDatasetId = train, architecture = "smallcnn" });
        Assert.Contains("takes an architecture, not a model", Error(errors, "modelId"));
        errors = await Rejected(new { defense = "advrbd", architecture = "smallcnn" });
        Assert.Contains("required", Error(errors, "poisonedTrainDatasetId"));
        errors = await Rejected(new { defense = "advrbd", poisonedTrainDatasetId = ids.Clean, architecture = "smallcnn" });
        Assert.Contains("is a clean data set", Error(errors, "poisonedTrainDatasetId"));
        errors = await Rejected(new { defense = "advrbd", poisonedTrainDatasetId = train, architecture = "resnet-9000" });
        Assert.Contains("unknown architecture", Error(errors, "architecture"));
        errors = await Rejected(new { defense = "advrbd", poisonedTrainDatasetId = train, architecture = "smallcnn", numClasses = 5 });
        Assert.Contains("holds label 9", Error(errors, "numClasses"));
        errors = await Rejected(new { defense = "advrbd", poisonedTrainDatasetId = train, architecture = "smallcnn", cleanDatasetId = ids.Clean, targetLabel = 12, testDatasetId = ids.Test });
        Assert.Contains("takes no clean data set", Error(errors, "cleanDatasetId"));
        Assert.Contains("[0, 10)", Error(errors, "targetLabel"));
        errors = await Rejected(new { defense = "advrbd", poisonedTrainDatasetId = train, architecture = "smallcnn", parameters = new { iterations = -1 } });
        Assert.True(errors.TryGetProperty("parameters.iterations", out _), errors.ToString());
        errors = await Rejected(new { defense = "rnp", modelId = ids.Model, cleanDatasetId = ids.Clean, poisonedTrainDatasetId = train, architecture = "smallcnn" });
        Assert.Contains("training-time defenses (advrbd)", Error(errors, "poisonedTrainDatasetId"));
        Assert.Contains("only training-time defenses", Error(errors, "architecture"));
        errors = await Rejected(new { defense = "rnp", cleanDatasetId = ids.Clean });
        Assert.Equal("required", Error(errors, "modelId"));
        Assert.Equal(0, host.Db(db => db.Runs.Count()));

        // A poisoned-train .npz whose truth does not have one flag per image is refused at upload; nothing is stored.
        var bytes = await File.ReadAllBytesAsync(SmallData.PathOf("poisoned-train"));
        var broken = new MemoryStream();
        using (var source = new ZipArchive(new MemoryStream(bytes)))
        using (var target = new ZipArchive(broken, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var entry in source.Entries.Where(e => e.FullName != "poisoned.npy"))
            {
                await using var to = await target.CreateEntry(entry.FullName).OpenAsync();
                await using var from = await entry.OpenAsync();
                await from.CopyToAsync(to);
            }

            using var few = DatasetReader.Read(bytes, "poisoned.npz");
            using var five = few.Data.Subset([0, 1, 2, 3, 4]);
            var small = new MemoryStream();
            NpzWriter.Write(five, small, [true, false, false, true, false]);
            using var smallZip = new ZipArchive(new MemoryStream(small.ToArray()));
            await using var flagsTo = await target.CreateEntry("poisoned.npy").OpenAsync();
            await using var flagsFrom = await smallZip.GetEntry("poisoned.npy")!.OpenAsync();
            await flagsFrom.CopyToAsync(flagsTo);
        }

        var datasets = host.Db(db => db.Datasets.Count());
        var upload = await Api.UploadDatasetAsync(client, broken.ToArray(), "broken.npz", "poisoned-train");
        var problem = await upload.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.BadRequest, upload.StatusCode);
        Assert.Contains($"5 poison flags for {10 * PoisonedPerClass} images", problem);
        Assert.Equal(datasets, host.Db(db => db.Datasets.Count()));
    }
}
