using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using WebDefense.Core.Runs;

namespace WebDefense.Server.Jobs;

/// <summary>
/// <c>WebDefense.Server.dll worker --spec &lt;path&gt; [--watch-parent]</c>: runs one defense run in this process and
/// writes its events to standard output, one JSON line each (nothing else goes to stdout; diagnostics go to stderr).
/// SIGTERM and Ctrl-C cancel the run; with --watch-parent, so does the end of standard input, which the parent holds
/// open: a parent killed with SIGKILL leaves no orphan computing on. Exit codes: 0 success, 1 internal error, 2 bad
/// input, 3 cancelled, 64 bad command line.
/// </summary>
public static class WorkerEntryPoint
{
    public const int ExitUsage = 64;

    public static int Run(string[] args)
    {
        // Reserve the real stdout for events; anything else printing to Console.Out lands on stderr.
        var events = new StreamWriter(Console.OpenStandardOutput(), new UTF8Encoding(false)) { AutoFlush = true, NewLine = "\n" };
        Console.SetOut(Console.Error);

        var watchParent = args is [_, _, WatchParentFlag];
        if (args is not (["--spec", _] or ["--spec", _, WatchParentFlag]))
        {
            Console.Error.WriteLine($"usage: WebDefense.Server worker --spec <path to spec.json> [{WatchParentFlag}]");
            return ExitUsage;
        }

        var specPath = args[1];
        if (WorkerPriority.ApplyFromEnvironment() is > 0 and var lowered)
        {
            Console.Error.WriteLine($"worker: nice {Environment.GetEnvironmentVariable(WorkerPriority.Variable)} on {lowered} thread(s)");
        }

        RunSpec spec;
        try
        {
            spec = JsonSerializer.Deserialize<RunSpec>(File.ReadAllText(specPath), RunSpec.Json)
                ?? throw new JsonException("the spec is null");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or NotSupportedException)
        {
            Console.Error.WriteLine($"cannot read the run spec {specPath}: {e.Message}");
            WriteEvent(events, new FailedEvent($"cannot read the run spec: {e.Message}", UserError: false));
            return RunWorker.ExitInternalError;
        }

        using var cts = new CancellationTokenSource();
        void Cancel(PosixSignalContext context)
        {
            context.Cancel = true; // let the run stop cooperatively and exit with code 3
            Console.Error.WriteLine($"worker: {context.Signal} received, cancelling");
            cts.Cancel();
        }

        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Cancel);
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Cancel);
        using var done = new ManualResetEventSlim();
        if (watchParent) WatchParent(cts, done);
        var code = RunWorker.Execute(spec, e => WriteEvent(events, e), cts.Token);
        events.Flush();
        done.Set();
        return code;
    }

    public const string WatchParentFlag = "--watch-parent";

    /// <summary>Standard input reaches its end when the parent closes it or dies: cancel, and exit if the run does not stop within 10 s.</summary>
    private static void WatchParent(CancellationTokenSource cts, ManualResetEventSlim done)
    {
        new Thread(() =>
        {
            try
            {
                using var stdin = Console.OpenStandardInput();
                var buffer = new byte[64];
                while (stdin.Read(buffer) > 0)
                {
                }
            }
            catch (IOException)
            {
            }

            if (done.IsSet) return;
            Console.Error.WriteLine("worker: standard input closed (the parent process is gone); cancelling");
            cts.Cancel();
            if (!done.Wait(TimeSpan.FromSeconds(10))) Environment.Exit(RunWorker.ExitCancelled);
        })
        { IsBackground = true, Name = "parent watch" }.Start();
    }

    private static void WriteEvent(StreamWriter events, RunEvent runEvent)
    {
        try
        {
            events.WriteLine(RunEventJson.ToLine(runEvent));
        }
        catch (IOException)
        {
            // The parent is gone (broken pipe); keep running to a clean exit.
        }
    }
}
