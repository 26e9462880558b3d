using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using WebDefense.Core.Runtime;
using WebDefense.Server.Data;
using WebDefense.Server.Hosting;

[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace WebDefense.Server.Tests;

internal static class TorchSetup
{
#pragma warning disable CA2255
    [ModuleInitializer]
    internal static void Probe() => TorchRuntime.EnsureAvailable();
#pragma warning restore CA2255
}

/// <summary>The real service on a temp DataDirectory (SQLite, artifacts, worker processes); no demo seed.</summary>
public sealed class ServiceHost(string dataDirectory, long maxUploadBytes = 50L * 1024 * 1024, IReadOnlyDictionary<string, string>? settings = null) : WebApplicationFactory<Program>
{
    public const string AdminKey = "wd_test_admin_key_0123456789abcdef";
    public string DataDirectory { get; } = dataDirectory;

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Testing"); // static web assets (Development only) expect src/Server/wwwroot
        builder.UseSetting("WebDefense:DataDirectory", DataDirectory);
        if (settings?.ContainsKey("generated-credentials") != true)
        {
            builder.UseSetting("WebDefense:Bootstrap:AdminApiKey", AdminKey);
            builder.UseSetting("WebDefense:Bootstrap:AdminPassword", "Admin-pass-123!");
        }

        builder.UseSetting("WebDefense:Bootstrap:SeedDemo", "false");
        builder.UseSetting("WebDefense:MaxModelUploadBytes", maxUploadBytes.ToString());
        builder.UseSetting("WebDefense:MaxDatasetUploadBytes", maxUploadBytes.ToString());
        builder.UseSetting("WebDefense:TorchThreads", "1");
        builder.UseSetting("Logging:LogLevel:Default", "Warning");
        foreach (var (key, value) in settings ?? new Dictionary<string, string>()) if (key.Contains(':')) builder.UseSetting(key, value);
    }

    public HttpClient Client(string key = AdminKey)
    {
        var client = CreateClient();
        client.DefaultRequestHeaders.Add("X-Api-Key", key);
        return client;
    }

    public T Db<T>(Func<AppDbContext, T> query)
    {
        using var scope = Services.CreateScope();
        return query(scope.ServiceProvider.GetRequiredService<AppDbContext>());
    }

    public static string NewDataDirectory() => Path.Combine(Path.GetTempPath(), "wd-server-tests", Guid.NewGuid().ToString("N"));
}

/// <summary>Small Fashion-MNIST sets (20/class clean, 300 test) written once per test run.</summary>
public static class SmallData
{
    private static readonly Lazy<IReadOnlyList<(string Kind, string Name, string Path)>> Sets = new(() =>
        DemoData.Write(Path.Combine(Path.GetTempPath(), "wd-server-tests", "data-" + Environment.ProcessId), perClass: 20, testCount: 300, poisonedPerClass: 60));

    public static string PathOf(string kind) => Sets.Value.First(s => s.Kind == kind).Path;

    public static string ModelPath => DemoData.ModelPath;
}

public static class Api
{
    public static async Task<HttpResponseMessage> UploadModelAsync(HttpClient client, byte[] file, string fileName, string architecture = "smallcnn", string shape = "1,28,28")
    {
        using var form = new MultipartFormDataContent
        {
            { new ByteArrayContent(file), "file", fileName },
            { new StringContent(architecture), "architecture" },
            { new StringContent("10"), "numClasses" },
            { new StringContent(shape), "inputShape" },
            { new StringContent("0"), "mean" },
            { new StringContent("1"), "std" },
        };
        return await client.PostAsync("/api/models", form);
    }

    public static async Task<HttpResponseMessage> UploadDatasetAsync(HttpClient client, byte[] file, string fileName, string kind)
    {
        using var form = new MultipartFormDataContent
        {
            { new ByteArrayContent(file), "file", fileName },
            { new StringContent(kind), "kind" },
        };
        return await client.PostAsync("/api/datasets", form);
    }

    public static async Task<Guid> IdAsync(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode}: {body}");
        return JsonDocument.Parse(body).RootElement.GetProperty("id").GetGuid();
    }

    /// <summary>Uploads the demo model and the three small data sets; returns their ids.</summary>
    public static async Task<(Guid Model, Guid Clean, Guid Test, Guid BackdoorTest)> SetUpAsync(HttpClient client)
    {
        var model = await IdAsync(await UploadModelAsync(client, await File.ReadAllBytesAsync(SmallData.ModelPath), "suspect.pt"));
        var clean = await IdAsync(await UploadDatasetAsync(client, await File.ReadAllBytesAsync(SmallData.PathOf("clean")), "clean.npz", "clean"));
        var test = await IdAsync(await UploadDatasetAsync(client, await File.ReadAllBytesAsync(SmallData.PathOf("test")), "test.npz", "test"));
        var bd = await IdAsync(await UploadDatasetAsync(client, await File.ReadAllBytesAsync(SmallData.PathOf("backdoor-test")), "bd.npz", "backdoor-test"));
        return (model, clean, test, bd);
    }

    public static object RnpRun((Guid Model, Guid Clean, Guid Test, Guid BackdoorTest) ids, int epochs = 1) => new
    {
        modelId = ids.Model,
        defense = "rnp",
        // RNP itself, without the backdoor scan first (ScanTests covers the scan).
        parameters = new Dictionary<string, object> { ["unlearning_epochs"] = epochs, ["recovering_epochs"] = epochs, ["batch_size"] = 64, ["scan"] = false },
        cleanDatasetId = ids.Clean,
        testDatasetId = ids.Test,
        backdoorTestDatasetId = ids.BackdoorTest,
        targetLabel = 0,
        seed = 1,
    };

    public static async Task<Guid> StartAsync(HttpClient client, object request)
    {
        var response = await client.PostAsJsonAsync("/api/runs", request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == System.Net.HttpStatusCode.Accepted, $"{(int)response.StatusCode}: {body}");
        return JsonDocument.Parse(body).RootElement.GetProperty("runIds")[0].GetGuid();
    }

    public static async Task<JsonElement> RunAsync(HttpClient client, Guid id) =>
        JsonDocument.Parse(await client.GetStringAsync($"/api/runs/{id}")).RootElement.Clone();

    public static async Task<JsonElement> WaitAsync(HttpClient client, Guid id, Func<JsonElement, bool> until, int seconds = 240)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            var run = await RunAsync(client, id);
            if (until(run)) return run;
            if (DateTime.UtcNow > deadline) Assert.Fail($"run {id} did not reach the expected state: {run}");
            await Task.Delay(500);
        }
    }

    public static bool Finished(JsonElement run) => run.GetProperty("status").GetString() is "Succeeded" or "Failed" or "Cancelled";

    public static void Key(HttpClient client, string key)
    {
        client.DefaultRequestHeaders.Remove("X-Api-Key");
        client.DefaultRequestHeaders.Add("X-Api-Key", key);
    }

    public static MediaTypeHeaderValue Json => new("application/json");
}
