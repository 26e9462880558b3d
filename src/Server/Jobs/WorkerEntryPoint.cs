using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using WebDefense.Core.Runs;

namespace WebDefense.Server.Jobs;

/// <summary>
/// <c>WebDefense.Server.dll worker --spec &lt;path&gt;</c>: runs one defense run in this process and writes its events
/// to standard output, one JSON line each (nothing else goes to stdout; diagnostics go to stderr). SIGTERM and
/// Ctrl-C cancel the run. Exit codes: 0 success, 1 internal error, 2 bad input, 3 cancelled, 64 bad command line.
/// </summary>
public static class WorkerEntryPoint
{
    public const int ExitUsage = 64;

    public static int Run(string[] args)
    {
        // Reserve the real stdout for events; anything else printing to Console.Out lands on stderr.
        var events = new StreamWriter(Console.OpenStandardOutput(), new UTF8Encoding(false)) { AutoFlush = true, NewLine = "\n" };
        Console.SetOut(Console.Error);

        if (args is not ["--spec", var specPath])
        {
            Console.Error.WriteLine("usage: WebDefense.Server worker --spec <path to spec.json>");
            return ExitUsage;
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
        var code = RunWorker.Execute(spec, e => WriteEvent(events, e), cts.Token);
        events.Flush();
        return code;
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
