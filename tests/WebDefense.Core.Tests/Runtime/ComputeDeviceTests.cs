using WebDefense.Core.Runtime;

namespace WebDefense.Core.Tests.Runtime;

public sealed class ComputeDeviceTests
{
    [Theory]
    [InlineData("auto", false, 0, "cpu")]
    [InlineData("auto", true, 2, "cuda:0")]
    [InlineData("auto", true, 0, "cpu")]
    [InlineData("cpu", true, 4, "cpu")]
    [InlineData("cuda", true, 1, "cuda:0")]
    [InlineData("cuda:3", true, 4, "cuda:3")]
    public void A_setting_resolves_to_a_concrete_device(string setting, bool cudaAvailable, int devices, string expected) =>
        Assert.Equal(expected, ComputeDevice.Resolve(setting, cudaAvailable, devices));

    [Theory]
    [InlineData("cuda", false, 0, "no CUDA device")]
    [InlineData("cuda:1", false, 2, "no CUDA device")]
    [InlineData("cuda:2", true, 2, "has 2 CUDA device(s) (cuda:0..cuda:1)")]
    public void A_missing_gpu_is_named(string setting, bool cudaAvailable, int devices, string message) =>
        Assert.Contains(message, Assert.Throws<DeviceUnavailableException>(() => ComputeDevice.Resolve(setting, cudaAvailable, devices)).Message);

    [Theory]
    [InlineData("gpu")]
    [InlineData("CUDA")]
    [InlineData("cuda:")]
    [InlineData("cuda:-1")]
    [InlineData("")]
    public void Other_settings_are_refused(string setting)
    {
        Assert.False(ComputeDevice.IsValid(setting));
        Assert.Throws<ArgumentException>(() => ComputeDevice.Resolve(setting, true, 1));
    }

    [Fact]
    public void A_device_kind_names_its_queue()
    {
        Assert.Equal("cpu", ComputeDevice.KindOf("cpu"));
        Assert.Equal("cuda", ComputeDevice.KindOf("cuda:7"));
    }

    [Fact]
    public void This_host_reports_what_libtorch_sees()
    {
        var info = TorchRuntime.EnsureAvailable();
        Assert.Equal(info.CudaAvailable, info.CudaDeviceCount > 0);
        Assert.Equal(info.CudaAvailable ? "cuda:0" : "cpu", ComputeDevice.Resolve("auto", info.CudaAvailable, info.CudaDeviceCount));
    }
}
