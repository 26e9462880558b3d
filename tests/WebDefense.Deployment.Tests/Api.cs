using System.Net.Http.Json;
using System.Runtime.CompilerServices;
using System.Text.Json;
using WebDefense.Core.Runtime;
using WebDefense.Server.Hosting;

[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace WebDefense.Deployment.Tests;

internal static class TorchSetup
{
#pragma warning disable CA2255
    [ModuleInitializer]
    internal static void Probe() => TorchRuntime.EnsureAvailable();
#pragma warning restore CA2255
}

/// <summary>Calls of the public REST API that the tests need.</summary>
public static class Api
{
    /// <summary>Small Fashion-MNIST sets (20 images per class clean, 300 test) and the demo model.</summary>
    public static async Task<(Guid Model, Guid Clean, Guid Test, Guid BackdoorTest)> UploadDemoAsync(HttpClient client, string directory)
    {
        var sets = DemoData.Write(directory, perClass: 20, testCount: 300, poisonedPerClass: 0);
        using var model = new MultipartFormDataContent
        {
            { new ByteArrayContent(await File.ReadAllBytesAsync(DemoData.ModelPath)), "file", "suspect.pt" },
            { new StringContent("smallcnn"), "architecture" }, { new StringContent("10"), "numClasses" },
            { new StringContent("1,28,28"), "inputShape" }, { new StringContent("0"), "mean" }, { new StringContent("1"), "std" },
        };
        var modelId = await IdAsync(await client.PostAsync("api/models", model));
        async Task<Guid> Dataset(string kind)
        {
            using var form = new MultipartFormDataContent
            {
                { new ByteArrayContent(await File.ReadAllBytesAsync(sets.First(s => s.Kind == kind).Path)), "file", kind + ".npz" },
                { new StringContent(kind), "kind" },
            };
            return await IdAsync(await client.PostAsync("api/datasets", form));
        }

        return (modelId, await Dataset("clean"), await Dataset("test"), await Dataset("backdoor-test"));
    }

    public static async Task<Guid> StartAsync(HttpClient client, object request)
    {
        var response = await client.PostAsJsonAsync("api/runs", request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == System.Net.HttpStatusCode.Accepted, $"{(int)response.StatusCode}: {body}");
        return JsonDocument.Parse(body).RootElement.GetProperty("runIds")[0].GetGuid();
    }

    public static async Task<JsonElement[]> RunsAsync(HttpClient client)
    {
        using var page = JsonDocument.Parse(await client.GetStringAsync("api/runs?pageSize=500"));
        return page.RootElement.GetProperty("items").EnumerateArray().Select(r => r.Clone()).ToArray();
    }

    public static async Task<JsonElement> RunAsync(HttpClient client, Guid id) =>
        JsonDocument.Parse(await client.GetStringAsync($"api/runs/{id}")).RootElement.Clone();

    public static bool Finished(JsonElement run) => run.GetProperty("status").GetString() is "Succeeded" or "Failed" or "Cancelled";

    private static async Task<Guid> IdAsync(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode}: {body}");
        return JsonDocument.Parse(body).RootElement.GetProperty("id").GetGuid();
    }
}
