using Microsoft.Extensions.Options;
using WebDefense.Core.Runtime;
using WebDefense.Server.Hosting;

namespace WebDefense.Server.Jobs;

/// <summary>
/// This process's <c>WebDefense:Device</c> resolved against what libtorch sees, and the queue of its kind
/// (runs-cpu or runs-cuda). A process that executes runs refuses to start when the CUDA device it names is
/// missing, or with more than one worker per GPU. A web-only process never computes: there the setting only picks
/// the queue its runs go to (cuda routes them to the GPU workers; auto follows the web host's own hardware).
/// </summary>
public sealed class RunDevice
{
    public RunDevice(IOptions<WebDefenseOptions> options, EngineStatus engine)
    {
        var o = options.Value;
        var cuda = engine.Info?.CudaAvailable ?? false;
        var count = engine.Info?.CudaDeviceCount ?? 0;
        Setting = o.Device;
        Resolved = o.ExecutesRuns || o.Device == ComputeDevice.Auto
            ? ComputeDevice.Resolve(o.Device, cuda, count)
            : o.Device;
        Kind = ComputeDevice.KindOf(Resolved);
        if (o.ExecutesRuns && Kind == ComputeDevice.Cuda && o.WorkerCount != 1)
        {
            throw new InvalidOperationException(
                $"WebDefense:Device {o.Device} resolves to {Resolved}: WebDefense:WorkerCount must be 1 (one run per GPU; start one worker per GPU with cuda:N)");
        }
    }

    public string Setting { get; }

    /// <summary>cpu or cuda:N (web-only: the setting as given, cuda or cuda:N).</summary>
    public string Resolved { get; }

    /// <summary>cpu or cuda.</summary>
    public string Kind { get; }

    public string Queue => QueueFor(Kind);

    public static string QueueFor(string kind) => "runs-" + kind;
}
