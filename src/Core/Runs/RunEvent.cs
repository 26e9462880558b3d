using System.Text.Json.Serialization;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Evaluation;
using WebDefense.Core.Scanning;

namespace WebDefense.Core.Runs;

/// <summary>
/// One line of a worker's event stream (JSON lines on its standard output). The service persists each event as
/// it arrives and pushes it to live clients.
/// </summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "type")]
[JsonDerivedType(typeof(StepEvent), "step")]
[JsonDerivedType(typeof(ProgressEvent), "progress")]
[JsonDerivedType(typeof(PointEvent), "point")]
[JsonDerivedType(typeof(LogEvent), "log")]
[JsonDerivedType(typeof(MetricsEvent), "metrics")]
[JsonDerivedType(typeof(CompletedEvent), "completed")]
[JsonDerivedType(typeof(FailedEvent), "failed")]
public abstract record RunEvent;

/// <summary>A defense step started (index of count).</summary>
public sealed record StepEvent(int Index, int Count, string Step) : RunEvent;

/// <summary>Overall progress in [0,1] plus the current step's message.</summary>
public sealed record ProgressEvent(double Progress, string Step, string Message) : RunEvent;

public sealed record PointEvent(TrajectoryPoint Point) : RunEvent;

public sealed record LogEvent(DateTimeOffset At, string Message) : RunEvent;

/// <summary>Test-set metrics of the model before ("before") or after ("after") the defense.</summary>
public sealed record MetricsEvent(string Stage, BackdoorMetrics Metrics) : RunEvent;

/// <summary>
/// The run succeeded. Artifacts (relative to the output directory): the purified model in the uploaded format
/// (<see cref="ModelFile"/>; a training-time run: the trained model as a PyTorch state dict; a scan run: none), metrics.json, metrics.csv,
/// trajectory.json, log.txt and, for a training-time run, <see cref="SuspectedFile"/> with <see cref="Suspected"/> rows
/// flagged and <see cref="Detection"/> when the training set carried the poisoning truth.
/// </summary>
public sealed record CompletedEvent(
    BackdoorMetrics? Before,
    BackdoorMetrics? After,
    double? Der,
    OperatingPoint Chosen,
    IReadOnlyDictionary<string, object> ResolvedParameters,
    IReadOnlyDictionary<string, object> Findings,
    double WallSeconds,
    string Device,
    string? ModelFile,
    string? SuspectedFile = null,
    int? Suspected = null,
    DetectionMetrics? Detection = null) : RunEvent
{
    /// <summary>What happened to the backdoor (post-training runs; for a scan run, null).</summary>
    public BackdoorOutcome? Outcome { get; init; }

    /// <summary>The scan (a scan run, or the scan a defense run did first), without the trigger specs; those are in scan.json.</summary>
    public ScanReport? Scan { get; init; }

    /// <summary>scan.json and the trigger images, relative to the output directory.</summary>
    public IReadOnlyList<string>? ScanFiles { get; init; }

    /// <summary>The scan's reconstructed trigger's ASR on held-out clean images, on the model before and after the defense.</summary>
    public double? EstimatedAsrBefore { get; init; }
    public double? EstimatedAsrAfter { get; init; }

    /// <summary>Whether <see cref="Before"/> are an earlier run's metrics (<see cref="RunSpec.KnownBefore"/>), not evaluated by this run.</summary>
    public bool BeforeReused { get; init; }
}

/// <summary>The run failed with a message meant for the user (bad input) or an internal error.</summary>
public sealed record FailedEvent(string Error, bool UserError) : RunEvent;
