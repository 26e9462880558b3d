using System.Net;
using System.Text;
using System.Text.Json;

namespace WebDefense.Server.Tests;

/// <summary>
/// Models uploaded as people publish them: only the file, nothing declared. The architecture, classes and input
/// come from the file, the response says what was found out and what was unwrapped around the weights.
/// </summary>
public sealed class BringYourOwnModelTests
{
    private static string Above(string relative)
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            var candidate = Path.Combine(d.FullName, relative);
            if (File.Exists(candidate) || Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException($"no {relative} above {AppContext.BaseDirectory}");
    }

    private static string SharedModel(string rel) => Path.Combine(Above(Path.Combine("shared", "data", "models")), rel);

    private static async Task<HttpResponseMessage> UploadFileOnly(HttpClient client, byte[] file, string fileName)
    {
        using var form = new MultipartFormDataContent { { new ByteArrayContent(file), "file", fileName } };
        return await client.PostAsync("/api/models", form);
    }

    [Fact]
    public async Task Legacy_training_checkpoint_uploads_as_it_is_and_the_answer_says_what_was_found()
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory());
        var client = host.Client();
        var response = await UploadFileOnly(client, await File.ReadAllBytesAsync(SharedModel("clean-resnet-cifar10-akamaster/resnet20-12fca82f.th")), "resnet20-12fca82f.th");
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, body);
        var m = JsonDocument.Parse(body).RootElement;
        Assert.Equal("PyTorchLegacy", m.GetProperty("format").GetString());
        Assert.Equal("resnet20", m.GetProperty("architecture").GetString());
        Assert.Equal(10, m.GetProperty("numClasses").GetInt32());
        Assert.Equal([3, 32, 32], m.GetProperty("inputShape").EnumerateArray().Select(x => x.GetInt32()));
        Assert.Equal(269_722, m.GetProperty("parameterCount").GetInt64());
        var checkpoint = m.GetProperty("checkpoint");
        Assert.Equal("state_dict", checkpoint.GetProperty("unwrappedFrom").GetString());
        Assert.Equal(["module."], checkpoint.GetProperty("strippedPrefixes").EnumerateArray().Select(x => x.GetString()));
        Assert.Equal(["best_prec1 (float 91.78)"], checkpoint.GetProperty("ignored").EnumerateArray().Select(x => x.GetString()));
        var inferred = m.GetProperty("inferred").EnumerateArray().Select(x => x.GetString()!).ToList();
        Assert.Contains("architecture resnet20: the file's keys and shapes fit it and no other zoo entry", inferred);
        Assert.Contains("10 classes from linear.weight", inferred);

        var stored = JsonDocument.Parse(await client.GetStringAsync($"/api/models/{m.GetProperty("id").GetGuid()}")).RootElement;
        Assert.Equal("resnet20", stored.GetProperty("architecture").GetString());
        Assert.Equal(10, stored.GetProperty("numClasses").GetInt32());
    }

    [Fact]
    public async Task Unknown_layout_gets_the_nearest_entry_and_the_torchscript_snippet()
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory());
        var response = await UploadFileOnly(host.Client(), await File.ReadAllBytesAsync(SharedModel("badnets-pytorch-verazuo/badnet-CIFAR10.pth")), "badnet-CIFAR10.pth");
        var body = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var detail = JsonDocument.Parse(body).RootElement.GetProperty("detail").GetString()!;
        Assert.Contains("fit no zoo architecture", detail);
        Assert.Contains("The nearest is '", detail);
        Assert.Contains("torch.jit.script(model).save('model.ts.pt')", detail);
        Assert.Equal(0, host.Db(db => db.Models.Count()));
    }

    [Fact]
    public async Task Hostile_legacy_pickle_is_refused_and_never_run()
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory());
        var marker = Path.Combine(host.DataDirectory, "pwned");
        var file = new List<byte> { 0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, (byte)'.' };
        file.AddRange([0x80, 0x02, (byte)'M', 0xe9, 0x03, (byte)'.', 0x80, 0x02, (byte)'}', (byte)'.']);
        file.AddRange([0x80, 0x02, (byte)'c', .. Encoding.ASCII.GetBytes("posix\nsystem\n")]);
        var command = Encoding.UTF8.GetBytes($"touch {marker}");
        file.Add((byte)'X');
        file.AddRange(BitConverter.GetBytes(command.Length));
        file.AddRange(command);
        file.AddRange([0x85, (byte)'R', (byte)'.']);
        var response = await UploadFileOnly(host.Client(), file.ToArray(), "evil.pth.tar");
        var body = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("'posix.system' is not allowed", body);
        Assert.DoesNotContain("torch.load", body);
        Assert.False(File.Exists(marker));
    }

    [Fact]
    public async Task TorchScript_needs_no_class_count_or_input_shape()
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory());
        var path = Above(Path.Combine("tests", "fixtures", "interop", "smallcnn.ts.pt"));
        var response = await UploadFileOnly(host.Client(), await File.ReadAllBytesAsync(path), "smallcnn.ts.pt");
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, body);
        var m = JsonDocument.Parse(body).RootElement;
        Assert.Equal("TorchScript", m.GetProperty("format").GetString());
        Assert.Equal(JsonValueKind.Null, m.GetProperty("architecture").ValueKind);
        Assert.Equal(10, m.GetProperty("numClasses").GetInt32());
        Assert.Equal([1, 28, 28], m.GetProperty("inputShape").EnumerateArray().Select(x => x.GetInt32()));
        Assert.Equal(JsonValueKind.Null, m.GetProperty("checkpoint").ValueKind);
        Assert.Contains("10 classes from the output of a probe forward pass", m.GetProperty("inferred").EnumerateArray().Select(x => x.GetString()));
    }

    [Fact]
    public async Task Cifar10_tarball_of_class_folders_uploads_as_it_is_with_the_folder_of_each_label()
    {
        using var host = new ServiceHost(ServiceHost.NewDataDirectory());
        var tarball = Path.Combine(Above(Path.Combine("shared", "data", "cifar10-jpeg")), "cifar10-jpeg-test.tar.gz");
        var response = await Api.UploadDatasetAsync(host.Client(), await File.ReadAllBytesAsync(tarball), "cifar10-jpeg-test.tar.gz", "test");
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, body);
        var d = JsonDocument.Parse(body).RootElement;
        Assert.Equal(10_000, d.GetProperty("count").GetInt32());
        Assert.Equal([3, 32, 32], d.GetProperty("shape").EnumerateArray().Select(x => x.GetInt32()));
        Assert.Equal(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
            d.GetProperty("classNames").EnumerateArray().Select(x => x.GetString()));
    }
}
