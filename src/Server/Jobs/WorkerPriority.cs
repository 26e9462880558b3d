using System.Runtime.InteropServices;

namespace WebDefense.Server.Jobs;

/// <summary>
/// Lowers a worker process's CPU priority (its nice value) so that on a shared machine the web server's requests are
/// scheduled before the run's tensor work. Linux sets nice per thread: every thread this process has is lowered, and
/// threads started afterwards (libtorch's pool among them) inherit it from the thread that starts them.
/// docs/results/api-load.md has what it changed.
/// </summary>
public static class WorkerPriority
{
    /// <summary>The environment variable the parent sets for the worker: its nice value.</summary>
    public const string Variable = "WEBDEFENSE_WORKER_NICE";

    /// <summary>Applies the nice value from <see cref="Variable"/>; returns the threads lowered (0 when not asked for, or not on Linux).</summary>
    public static int ApplyFromEnvironment()
    {
        if (!OperatingSystem.IsLinux() || !int.TryParse(Environment.GetEnvironmentVariable(Variable), out var nice) || nice <= 0) return 0;
        nice = Math.Min(nice, 19);
        var lowered = 0;
        foreach (var task in Directory.EnumerateDirectories("/proc/self/task"))
        {
            if (int.TryParse(Path.GetFileName(task), out var tid) && SetPriority(PrioProcess, tid, nice) == 0) lowered++;
        }

        return lowered;
    }

    private const int PrioProcess = 0;

    // DllImport rather than LibraryImport: three ints marshal as they are, and the project needs no unsafe code.
    [DllImport("libc", EntryPoint = "setpriority", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int SetPriority(int which, int who, int priority);
}
