using TorchSharp;
using WebDefense.Core.Runtime;

namespace WebDefense.Core.Tests.Runtime;

public class TorchRuntimeTests
{
    [Fact]
    public void Native_backend_loads_and_computes()
    {
        var info = TorchRuntime.EnsureAvailable();
        Assert.EndsWith("libLibTorchSharp.so", info.NativeLibrary);
        using var a = torch.arange(6, dtype: torch.float32).reshape(2, 3);
        using var b = a.matmul(a.t());
        Assert.Equal(new float[] { 5, 14, 14, 50 }, b.data<float>().ToArray());
    }

    [Fact]
    public void Build_left_no_fallback_copy_of_the_natives()
    {
        // TorchSharp copies ~500 MB of natives into <bin>/cpu when its first load fails; the build's
        // patch must make the first load succeed.
        Assert.False(Directory.Exists(Path.Combine(AppContext.BaseDirectory, "cpu")));
    }
}
