using System.Runtime.InteropServices;
using TorchSharp;

namespace WebDefense.Core.Runtime;

/// <summary>What the start-up probe found about the native torch backend.</summary>
public sealed record TorchRuntimeInfo(string NativeLibrary, bool CudaAvailable, int Threads, int CudaDeviceCount);

/// <summary>The native backend could not be loaded; the message names the cause and the fix.</summary>
public sealed class TorchRuntimeUnavailableException(string message, Exception? inner = null)
    : Exception(message, inner);

/// <summary>
/// Probes TorchSharp's native backend once per process. A failed native load inside TorchSharp's
/// type initializer poisons every later use of <c>torch</c> with a TypeInitializationException (and
/// triggers a 500 MB fallback copy), so the probe loads libLibTorchSharp.so itself first and turns a
/// failure into one clear message.
/// </summary>
public static class TorchRuntime
{
    private static readonly Lazy<TorchRuntimeInfo> Probe = new(RunProbe, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Loads the backend (once) or throws <see cref="TorchRuntimeUnavailableException"/>.</summary>
    public static TorchRuntimeInfo EnsureAvailable() => Probe.Value;

    /// <summary>
    /// Sets the intra-op thread count for the calling thread. libtorch's OpenMP setting is per thread:
    /// call this at the start of every job, on the thread that runs it.
    /// </summary>
    public static void UseThreads(int threads)
    {
        EnsureAvailable();
        if (threads > 0) torch.set_num_threads(threads);
    }

    /// <summary>
    /// Libraries loaded, in order, before LibTorchSharp (colon-separated paths): another libtorch than the one next to the
    /// application, e.g. a CUDA wheel's <c>libc10.so:libtorch_cpu.so:libc10_cuda.so:libtorch_cuda.so:libtorch.so</c>
    /// (tools/gpu/check.sh). The dynamic loader then resolves LibTorchSharp's dependencies to these, by soname.
    /// </summary>
    public const string PreloadVariable = "WEBDEFENSE_TORCH_PRELOAD";

    private static TorchRuntimeInfo RunProbe()
    {
        foreach (var path in (Environment.GetEnvironmentVariable(PreloadVariable) ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            if (!NativeLibrary.TryLoad(path, out _))
            {
                throw new TorchRuntimeUnavailableException($"{PreloadVariable}: {path} failed to load: {DlError(path)}");
            }
        }

        var library = FindLibTorchSharp();
        if (library is null)
        {
            throw new TorchRuntimeUnavailableException(
                "TorchSharp's native library libLibTorchSharp.so was not found next to the application " +
                $"({AppContext.BaseDirectory}). Cause: the app was built without a libtorch backend package. " +
                "Fix: build with the default backend (libtorch-cpu-linux-x64) or -p:TorchBackend=cuda.");
        }

        if (!NativeLibrary.TryLoad(library, out _))
        {
            var detail = DlError(library);
            var cause = detail.Contains("GLIBCXX_", StringComparison.Ordinal)
                ? "Cause: the host's libstdc++ is older than the one LibTorchSharp was built against (it needs " +
                  "GLIBCXX_3.4.32, Debian 12 has 3.4.30). Fix: build or publish with this repository's build " +
                  "(build/TorchNative.targets marks that requirement weak after every build and publish), or run " +
                  "on a host with GCC 13's libstdc++ or newer."
                : "Cause: a dependency of libLibTorchSharp.so (libtorch, libc10, libgomp) is missing or does not match. " +
                  "Fix: restore the libtorch-cpu-linux-x64 2.10.0 package and rebuild.";
            throw new TorchRuntimeUnavailableException($"TorchSharp's native backend failed to load from {library}: {detail}. {cause}");
        }

        try
        {
            torch.InitializeDeviceType(DeviceType.CPU);
            using var probe = torch.ones(2, 2);
            _ = probe.sum().item<float>();
            var cuda = torch.cuda.is_available();
            return new TorchRuntimeInfo(library, cuda, torch.get_num_threads(), cuda ? torch.cuda.device_count() : 0);
        }
        catch (Exception ex) when (ex is TypeInitializationException or NotSupportedException or InvalidOperationException or DllNotFoundException)
        {
            throw new TorchRuntimeUnavailableException(
                $"TorchSharp loaded {library} but failed to initialise: {ex.GetBaseException().Message}", ex);
        }
    }

    /// <summary>The dynamic loader's own reason, which .NET's DllNotFoundException does not carry.</summary>
    private static string DlError(string path)
    {
        var handle = dlopen(path, 1 /* RTLD_LAZY */);
        if (handle != IntPtr.Zero)
        {
            return "dlopen succeeded on retry";
        }

        var error = dlerror();
        return error == IntPtr.Zero ? "unknown loader error" : Marshal.PtrToStringUTF8(error) ?? "unknown loader error";
    }

    [DllImport("libc", EntryPoint = "dlopen")]
    private static extern IntPtr dlopen(string path, int flags);

    [DllImport("libc", EntryPoint = "dlerror")]
    private static extern IntPtr dlerror();

    private static string? FindLibTorchSharp()
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        var baseDir = AppContext.BaseDirectory;
        string[] candidates =
        [
            Path.Combine(baseDir, "libLibTorchSharp.so"),
            Path.Combine(baseDir, "runtimes", "linux-x64", "native", "libLibTorchSharp.so"),
        ];
        return candidates.FirstOrDefault(File.Exists);
    }
}
