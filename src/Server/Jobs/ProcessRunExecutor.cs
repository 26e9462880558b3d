using System.Diagnostics;
using System.Text;
using System.Text.Json;
using WebDefense.Core.Runs;

namespace WebDefense.Server.Jobs;

/// <summary>How worker processes are started (bound from configuration by the host).</summary>
public sealed record ProcessRunExecutorOptions
{
    /// <summary>A run that takes longer is killed and fails. Null = no limit.</summary>
    public TimeSpan? WorkerTimeout { get; init; } = TimeSpan.FromHours(12);

    /// <summary>The dotnet host to start the worker with; null = DOTNET_HOST_PATH, this process's host, or "dotnet".</summary>
    public string? DotnetHostPath { get; init; }

    /// <summary>The assembly run in worker mode; null = the server assembly (the one holding <see cref="WorkerEntryPoint"/>).</summary>
    public string? WorkerAssemblyPath { get; init; }

    /// <summary>How much of the worker's stderr is kept for the failure message.</summary>
    public int StderrTailChars { get; init; } = 8 * 1024;

    /// <summary>The worker's Linux nice value (0–19; 0 = as the server): the web server's requests go first when both want the cores.</summary>
    public int Nice { get; init; }
}

/// <summary>
/// Runs each spec in a child process (<c>dotnet WebDefense.Server.dll worker --spec spec.json</c>) and streams
/// its JSON-line events. Worker failures — crashes, signals, bad output — become a failed result; nothing
/// here throws for them.
/// </summary>
public sealed class ProcessRunExecutor(ProcessRunExecutorOptions? options = null, Action<string>? diagnostics = null) : IRunExecutor
{
    private readonly ProcessRunExecutorOptions _options = options ?? new();
    private readonly Action<string> _diagnostics = diagnostics ?? (_ => { });

    public async Task<RunExecutionResult> ExecuteAsync(RunSpec spec, Func<RunEvent, Task> onEvent, CancellationToken cancellation)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(onEvent);
        if (cancellation.IsCancellationRequested)
        {
            return new RunExecutionResult(false, true, null, "cancelled");
        }

        Process process;
        try
        {
            Directory.CreateDirectory(spec.OutputDirectory);
            var specPath = Path.Combine(spec.OutputDirectory, "spec.json");
            var temp = specPath + ".tmp";
            await File.WriteAllTextAsync(temp, JsonSerializer.Serialize(spec, RunSpec.Json), CancellationToken.None).ConfigureAwait(false);
            File.Move(temp, specPath, overwrite: true);
            process = Start(spec, specPath);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return new RunExecutionResult(false, false, null, $"the worker process could not be started: {e.Message}");
        }

        using (process)
        {
            return await Supervise(process, onEvent, cancellation).ConfigureAwait(false);
        }
    }

    private Process Start(RunSpec spec, string specPath)
    {
        var info = new ProcessStartInfo(DotnetHost())
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
            WorkingDirectory = spec.OutputDirectory,
        };
        info.ArgumentList.Add(_options.WorkerAssemblyPath ?? typeof(WorkerEntryPoint).Assembly.Location);
        info.ArgumentList.Add("worker");
        info.ArgumentList.Add("--spec");
        info.ArgumentList.Add(specPath);
        info.ArgumentList.Add(WorkerEntryPoint.WatchParentFlag);
        var threads = Math.Max(1, spec.Threads).ToString(System.Globalization.CultureInfo.InvariantCulture);
        info.Environment["OMP_NUM_THREADS"] = threads;
        info.Environment["MKL_NUM_THREADS"] = threads;
        info.Environment[WorkerPriority.Variable] = _options.Nice.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var process = new Process { StartInfo = info };
        process.Start();
        // Standard input stays open and unused: it closes when this process ends (even by SIGKILL), and the worker,
        // started with --watch-parent, then stops instead of computing on as an orphan.
        _diagnostics($"run {spec.RunId}: worker process {process.Id} started");
        return process;
    }

    /// <summary>The dotnet host: the option, DOTNET_HOST_PATH, this process's executable when it is the dotnet host, else "dotnet".</summary>
    public string DotnetHost()
    {
        if (!string.IsNullOrEmpty(_options.DotnetHostPath)) return _options.DotnetHostPath;
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } fromEnv && File.Exists(fromEnv)) return fromEnv;
        if (Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet") return self;
        return "dotnet";
    }

    private async Task<RunExecutionResult> Supervise(Process process, Func<RunEvent, Task> onEvent, CancellationToken cancellation)
    {
        CompletedEvent? completed = null;
        FailedEvent? failed = null;
        var stderr = new TailBuffer(_options.StderrTailChars);
        using var timeout = _options.WorkerTimeout is { } limit ? new CancellationTokenSource(limit) : new CancellationTokenSource();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellation, timeout.Token);

        var stderrTask = Task.Run(async () =>
        {
            try
            {
                while (await process.StandardError.ReadLineAsync().ConfigureAwait(false) is { } line)
                {
                    stderr.Append(line);
                }
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException)
            {
            }
        }, CancellationToken.None);

        string? handlerError = null;
        var stdoutTask = Task.Run(async () =>
        {
            try
            {
                while (await process.StandardOutput.ReadLineAsync().ConfigureAwait(false) is { } line)
                {
                    var runEvent = RunEventJson.TryParse(line);
                    if (runEvent is null)
                    {
                        _diagnostics($"worker {process.Id}: ignored a line that is not an event: {Truncate(line, 200)}");
                        continue;
                    }

                    if (runEvent is CompletedEvent c) completed = c;
                    if (runEvent is FailedEvent f) failed = f;
                    if (handlerError is not null) continue;
                    try
                    {
                        await onEvent(runEvent).ConfigureAwait(false);
                    }
                    catch (Exception e)
                    {
                        handlerError = e.Message;
                        _diagnostics($"worker {process.Id}: the event handler failed: {e}");
                    }
                }
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException)
            {
            }
        }, CancellationToken.None);

        var stopped = false;
        try
        {
            await process.WaitForExitAsync(stop.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            stopped = true;
            Kill(process);
        }

        // Drain what is left of the output (bounded: a grandchild holding the pipes must not hang us).
        await Task.WhenAny(Task.WhenAll(stdoutTask, stderrTask), Task.Delay(TimeSpan.FromSeconds(10), CancellationToken.None)).ConfigureAwait(false);

        if (stopped)
        {
            if (cancellation.IsCancellationRequested)
            {
                return new RunExecutionResult(false, true, null, "cancelled");
            }

            return new RunExecutionResult(false, false, null,
                $"the worker exceeded the time limit of {_options.WorkerTimeout} and was stopped" + StderrSuffix(stderr));
        }

        var exitCode = process.ExitCode;
        if (handlerError is not null)
        {
            return new RunExecutionResult(false, false, null, $"recording the run's events failed: {handlerError}");
        }

        if (exitCode == 0 && completed is not null)
        {
            return new RunExecutionResult(true, false, completed, null);
        }

        if (failed is not null)
        {
            return new RunExecutionResult(false, false, null, failed.Error);
        }

        if (exitCode == RunWorker.ExitCancelled)
        {
            return new RunExecutionResult(false, false, null, "the worker process stopped as cancelled without being asked to" + StderrSuffix(stderr));
        }

        var reason = exitCode switch
        {
            0 => "the worker process exited without reporting a result",
            > 128 and < 128 + 65 => $"the worker process was killed by signal {SignalName(exitCode - 128)} ({exitCode - 128})"
                + (exitCode - 128 == 9 ? " (e.g. out of memory)" : exitCode - 128 is 6 or 11 ? " (a native crash)" : ""),
            _ => $"the worker process exited with code {exitCode}",
        };
        // Killed by a signal or gone without a word: the process died, not the defense (a reported failure returned above).
        return new RunExecutionResult(false, false, null, reason + StderrSuffix(stderr)) { Crashed = exitCode == 0 || exitCode > 128 };
    }

    private void Kill(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
            if (!process.WaitForExit(TimeSpan.FromSeconds(5)))
            {
                _diagnostics($"worker {process.Id} did not exit within 5 s of being killed");
            }
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception or NotSupportedException)
        {
            // Already gone.
        }
    }

    private static string StderrSuffix(TailBuffer stderr)
    {
        var tail = stderr.Text().Trim();
        return tail.Length == 0 ? "" : "\nstderr (tail):\n" + tail;
    }

    private static string Truncate(string s, int max) => s.Length <= max ? s : s[..max] + "…";

    public static string SignalName(int signal) => signal switch
    {
        1 => "SIGHUP", 2 => "SIGINT", 3 => "SIGQUIT", 4 => "SIGILL", 6 => "SIGABRT", 7 => "SIGBUS", 8 => "SIGFPE",
        9 => "SIGKILL", 11 => "SIGSEGV", 13 => "SIGPIPE", 14 => "SIGALRM", 15 => "SIGTERM", 24 => "SIGXCPU", 25 => "SIGXFSZ",
        _ => $"SIG{signal}",
    };

    /// <summary>Keeps the last N characters of appended lines.</summary>
    private sealed class TailBuffer(int max)
    {
        private readonly object _gate = new();
        private readonly StringBuilder _text = new();

        public void Append(string line)
        {
            lock (_gate)
            {
                _text.Append(line).Append('\n');
                if (_text.Length > max) _text.Remove(0, _text.Length - max);
            }
        }

        public string Text()
        {
            lock (_gate)
            {
                return _text.ToString();
            }
        }
    }
}
