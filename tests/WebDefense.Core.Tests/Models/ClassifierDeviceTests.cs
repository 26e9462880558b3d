using TorchSharp;
using WebDefense.Core.Data;
using WebDefense.Core.Models;
using WebDefense.Core.Models.Zoo;
using static TorchSharp.torch;

namespace WebDefense.Core.Tests.Models;

/// <summary>
/// The device rule of the engine (docs/gpu.md): a model lives on one device and its batches, labels and counters go
/// there. On a CPU-only libtorch only the same-device half can be checked; the meta device does not help (libtorch has
/// no meta convolution, and a linear layer mixes meta and CPU tensors without complaint), so the cross-device half is
/// the GPU check's (tools/gpu/check.sh).
/// </summary>
public class ClassifierDeviceTests
{
    private static ImageDataset Images(int count)
    {
        var generator = new Generator(3);
        return new ImageDataset(randint(0, 256, [count, 1, 28, 28], dtype: ScalarType.Byte, generator: generator),
            arange(count, dtype: ScalarType.Int64).remainder(10));
    }

    [Fact]
    public void A_clone_stays_on_its_source_device_and_moving_to_the_same_device_keeps_the_parameters()
    {
        using var model = ModelZoo.CreateClassifier("smallcnn", 10, InputSpec.Grey28);
        var first = model.Module.parameters().First();
        Assert.Same(model, model.MoveTo(CPU));
        // A move replaces parameters, which would strand topologies and optimisers holding them: the same device must not.
        Assert.Equal(first.Handle, model.Module.parameters().First().Handle);
        using var copy = model.Clone();
        Assert.Equal(DeviceType.CPU, copy.Device.type);
        using var data = Images(4);
        using var prepared = model.Prepare(data.Images);
        using var normalized = model.Input.Normalize(data.Images);
        Assert.Equal(ScalarType.Float32, prepared.dtype);
        Assert.Equal(0f, (prepared - normalized).abs().max().item<float>());
    }
}
