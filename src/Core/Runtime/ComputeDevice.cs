using System.Globalization;
using System.Text.RegularExpressions;

namespace WebDefense.Core.Runtime;

/// <summary>CUDA was asked for (cuda, cuda:N) but libtorch sees no such device on this host.</summary>
public sealed class DeviceUnavailableException(string message) : Exception(message);

/// <summary>
/// The device setting <c>auto | cpu | cuda | cuda:N</c> and what it means on a host: <c>auto</c> is cuda:0 when
/// libtorch sees a CUDA device and cpu otherwise; <c>cuda</c> is cuda:0.
/// </summary>
public static partial class ComputeDevice
{
    public const string Auto = "auto";
    public const string Cpu = "cpu";
    public const string Cuda = "cuda";

    [GeneratedRegex("^(auto|cpu|cuda(:[0-9]{1,3})?)$")]
    private static partial Regex Setting();

    public static bool IsValid(string? setting) => setting is not null && Setting().IsMatch(setting);

    /// <summary>The concrete device for a setting: "cpu" or "cuda:N".</summary>
    /// <exception cref="ArgumentException">Not auto, cpu, cuda or cuda:N.</exception>
    /// <exception cref="DeviceUnavailableException">CUDA asked for, but absent or the index is out of range.</exception>
    public static string Resolve(string setting, bool cudaAvailable, int cudaDeviceCount)
    {
        if (!IsValid(setting)) throw new ArgumentException($"device must be auto, cpu, cuda or cuda:N, got '{setting}'", nameof(setting));
        var devices = cudaAvailable ? Math.Max(cudaDeviceCount, 0) : 0;
        switch (setting)
        {
            case Cpu:
                return Cpu;
            case Auto:
                return devices > 0 ? Cuda + ":0" : Cpu;
        }

        var index = setting == Cuda ? 0 : int.Parse(setting[(Cuda.Length + 1)..], CultureInfo.InvariantCulture);
        if (devices == 0)
        {
            throw new DeviceUnavailableException(
                $"device {setting}: libtorch sees no CUDA device on this host (a CPU build of the backend, no driver, or no GPU visible to the process)");
        }

        if (index >= devices)
        {
            throw new DeviceUnavailableException($"device {setting}: this host has {devices} CUDA device(s) (cuda:0..cuda:{devices - 1})");
        }

        return $"{Cuda}:{index.ToString(CultureInfo.InvariantCulture)}";
    }

    /// <summary>"cpu" or "cuda": the kind of a resolved device (the queue its runs are taken from).</summary>
    public static string KindOf(string device) => device.StartsWith(Cuda, StringComparison.Ordinal) ? Cuda : Cpu;
}
