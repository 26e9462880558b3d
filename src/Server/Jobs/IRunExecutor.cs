using WebDefense.Core.Runs;

namespace WebDefense.Server.Jobs;

/// <summary>How a run ended, as seen by the process that executed it.</summary>
public sealed record RunExecutionResult(bool Succeeded, bool Cancelled, CompletedEvent? Completed, string? Error)
{
    /// <summary>The worker process died without reporting (a signal such as SIGKILL, a native crash, no result): not the run's own error.</summary>
    public bool Crashed { get; init; }
}

/// <summary>
/// Executes one run in an isolated child worker process: a native crash, abort or out-of-memory there fails the
/// run (with the reason) and never takes the web server down. Events are reported as they arrive; cancelling
/// the token stops the worker promptly.
/// </summary>
public interface IRunExecutor
{
    Task<RunExecutionResult> ExecuteAsync(RunSpec spec, Func<RunEvent, Task> onEvent, CancellationToken cancellation);
}
