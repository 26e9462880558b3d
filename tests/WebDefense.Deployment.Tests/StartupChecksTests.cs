namespace WebDefense.Deployment.Tests;

/// <summary>Configurations that cannot work refuse to start, with a message that names the setting.</summary>
public sealed class StartupChecksTests
{
    [Fact]
    public async Task A_worker_without_the_PostgreSQL_storage_refuses_to_start()
    {
        var data = Directory.CreateTempSubdirectory("wd-startup-").FullName;
        using var worker = ServiceProcess.Start("worker", new Dictionary<string, string>
        {
            ["WebDefense__Role"] = "worker",
            ["WebDefense__DataDirectory"] = data,
        });
        var code = await worker.WaitForExitAsync(TimeSpan.FromMinutes(2));
        Assert.NotEqual(0, code);
        Assert.Contains("WebDefense:Role Worker needs WebDefense:Storage postgres", worker.Output());
        Directory.Delete(data, recursive: true);
    }

    [Fact]
    public async Task A_worker_for_a_GPU_this_host_lacks_refuses_to_start()
    {
        var data = Directory.CreateTempSubdirectory("wd-startup-").FullName;
        using var worker = ServiceProcess.Start("worker", new Dictionary<string, string>
        {
            ["WebDefense__Role"] = "worker",
            ["WebDefense__Storage"] = "postgres",
            ["ConnectionStrings__WebDefense"] = "Host=127.0.0.1;Port=1;Username=nobody;Database=none",
            ["WebDefense__Device"] = "cuda:0",
            ["WebDefense__DataDirectory"] = data,
        });
        var code = await worker.WaitForExitAsync(TimeSpan.FromMinutes(2));
        Assert.NotEqual(0, code);
        Assert.Contains("device cuda:0: libtorch sees no CUDA device on this host", worker.Output());
        Directory.Delete(data, recursive: true);
    }
}
