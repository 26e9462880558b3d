using Microsoft.AspNetCore.Identity;

namespace WebDefense.Server.Data;

public sealed class Team
{
    public Guid Id { get; set; } = Guid.NewGuid();
    public required string Name { get; set; }
    public DateTimeOffset CreatedAt { get; set; } = DateTimeOffset.UtcNow;
}

public sealed class User : IdentityUser<Guid>
{
    public Guid TeamId { get; set; }
    public Team? Team { get; set; }
}

/// <summary>A per-user API key; only its SHA-256 is stored, the raw key is shown once.</summary>
public sealed class ApiKey
{
    public Guid Id { get; set; } = Guid.NewGuid();
    public Guid UserId { get; set; }
    public User? User { get; set; }
    public required string Name { get; set; }
    public required string Prefix { get; set; }
    public required string Hash { get; set; }
    public DateTimeOffset CreatedAt { get; set; } = DateTimeOffset.UtcNow;
    public DateTimeOffset? RevokedAt { get; set; }
}

public sealed class ModelRecord
{
    public Guid Id { get; set; } = Guid.NewGuid();
    public Guid TeamId { get; set; }
    public required string Name { get; set; }
    public required string FileName { get; set; }
    public required string Format { get; set; }
    public string? Architecture { get; set; }
    public int NumClasses { get; set; }
    public int Channels { get; set; }
    public int Height { get; set; }
    public int Width { get; set; }
    public required string Mean { get; set; }
    public required string Std { get; set; }
    public long ParameterCount { get; set; }
    public required string Sha256 { get; set; }
    public long SizeBytes { get; set; }
    public required string StoredName { get; set; }
    public string Warnings { get; set; } = "[]";
    public DateTimeOffset CreatedAt { get; set; } = DateTimeOffset.UtcNow;
}

public sealed class DatasetRecord
{
    public Guid Id { get; set; } = Guid.NewGuid();
    public Guid TeamId { get; set; }
    public required string Name { get; set; }
    public required string Kind { get; set; }
    public required string FileName { get; set; }
    public int Count { get; set; }
    public int Channels { get; set; }
    public int Height { get; set; }
    public int Width { get; set; }
    /// <summary>JSON array of the labels present.</summary>
    public string Classes { get; set; } = "[]";
    public int MaxLabel { get; set; }
    public required string Sha256 { get; set; }
    public long SizeBytes { get; set; }
    public required string StoredName { get; set; }
    public DateTimeOffset CreatedAt { get; set; } = DateTimeOffset.UtcNow;
}

public static class RunKinds
{
    public const string PostTraining = "post-training";
    public const string TrainingTime = "training-time";
    public const string Scan = "scan";
}

public enum RunStatus { Queued, Running, Succeeded, Failed, Cancelled }

public sealed class RunRecord
{
    public Guid Id { get; set; } = Guid.NewGuid();
    public Guid TeamId { get; set; }
    public Guid? BatchId { get; set; }
    /// <summary>post-training (purifies <see cref="ModelId"/>), training-time (trains <see cref="Architecture"/> on <see cref="PoisonedTrainDatasetId"/>) or scan (looks for a backdoor in <see cref="ModelId"/>).</summary>
    public string Kind { get; set; } = RunKinds.PostTraining;
    /// <summary>The suspect model; null for a training-time run.</summary>
    public Guid? ModelId { get; set; }
    /// <summary>Training-time runs: the zoo architecture trained, its class count, and the untrusted training set.</summary>
    public string? Architecture { get; set; }
    public int? NumClasses { get; set; }
    public Guid? PoisonedTrainDatasetId { get; set; }
    public required string Defense { get; set; }
    public RunStatus Status { get; set; }
    public double Progress { get; set; }
    public string? Step { get; set; }
    public string? Message { get; set; }
    public Guid? CleanDatasetId { get; set; }
    public Guid? TestDatasetId { get; set; }
    public Guid? BackdoorTestDatasetId { get; set; }
    public Guid? BackdoorSamplesDatasetId { get; set; }
    public string? TriggerJson { get; set; }
    public int? TargetLabel { get; set; }
    public int Seed { get; set; }
    /// <summary>Parameters as requested (JSON object); <see cref="ResolvedParameters"/> after the run.</summary>
    public string RequestedParameters { get; set; } = "{}";
    public string? ResolvedParameters { get; set; }
    public string? Findings { get; set; }
    public double? BeforeAcc { get; set; }
    public double? BeforeAsr { get; set; }
    public double? BeforeRa { get; set; }
    public double? AfterAcc { get; set; }
    public double? AfterAsr { get; set; }
    public double? AfterRa { get; set; }
    public double? Der { get; set; }
    /// <summary>Training-time runs: how many training samples were suspected of being poisoned.</summary>
    public int? SuspectedCount { get; set; }
    /// <summary>Training-time runs whose training set carried the poisoning truth: poisoned samples, and those among the suspected.</summary>
    public int? PoisonedCount { get; set; }
    public int? TruePositives { get; set; }
    public double? DetectionPrecision { get; set; }
    public double? DetectionRecall { get; set; }
    /// <summary>Post-training runs: what happened to the backdoor (removed, reduced, still-present, none-found, not-measured), on what basis (measured, estimated, none), in words, and whether the model changed at all.</summary>
    public string? Outcome { get; set; }
    public string? OutcomeBasis { get; set; }
    public string? OutcomeSummary { get; set; }
    public bool? ModelChanged { get; set; }
    /// <summary>The scan's reconstructed trigger's ASR on held-out clean images before and after the defense (scan-assisted runs).</summary>
    public double? EstimatedAsrBefore { get; set; }
    public double? EstimatedAsrAfter { get; set; }
    /// <summary>Scan runs, and post-training runs that scanned first: the scan's verdict and per-label numbers (JSON, without the trigger specs).</summary>
    public string? Scan { get; set; }
    public string? ChosenPoint { get; set; }
    public string? ChosenRule { get; set; }
    /// <summary>
    /// The earlier run whose "before" metrics this run took instead of evaluating the same model (file and declaration)
    /// on the same test sets, trigger and target again; null when this run measured them itself.
    /// </summary>
    public Guid? BeforeReusedFrom { get; set; }
    /// <summary>The device the run computed on (cpu, cuda:N), as the worker reported it.</summary>
    public string? Device { get; set; }
    public double? WallSeconds { get; set; }
    /// <summary>How often a worker claimed the run: 1, or more when a worker died and another took the run over.</summary>
    public int Attempt { get; set; }
    /// <summary>The worker process of the latest attempt (host:pid).</summary>
    public string? Worker { get; set; }
    /// <summary>While Running: the claim of <see cref="Worker"/> holds until then unless renewed.</summary>
    public DateTimeOffset? LeaseExpiresAt { get; set; }
    public string? Error { get; set; }
    public DateTimeOffset CreatedAt { get; set; } = DateTimeOffset.UtcNow;
    public DateTimeOffset? StartedAt { get; set; }
    public DateTimeOffset? FinishedAt { get; set; }

    public bool IsFinished => Status is RunStatus.Succeeded or RunStatus.Failed or RunStatus.Cancelled;
}

public sealed class TrajectoryPointRecord
{
    public long Id { get; set; }
    public Guid RunId { get; set; }
    /// <summary>The run's attempt that reported the point; only the latest attempt's points are the trajectory.</summary>
    public int Attempt { get; set; }
    public int Index { get; set; }
    /// <summary>The point as the engine reported it (JSON).</summary>
    public required string Json { get; set; }
}

public sealed class RunLogRecord
{
    public long Id { get; set; }
    public Guid RunId { get; set; }
    public DateTimeOffset At { get; set; }
    public required string Message { get; set; }
}

/// <summary>A file a run produced, stored content-addressed under artifacts/.</summary>
public sealed class RunArtifactRecord
{
    public long Id { get; set; }
    public Guid RunId { get; set; }
    /// <summary>model, metrics.json, metrics.csv, log, trajectory.json, suspected.csv (training-time runs).</summary>
    public required string Kind { get; set; }
    public required string FileName { get; set; }
    public required string Sha256 { get; set; }
    public required string StoredName { get; set; }
    public long SizeBytes { get; set; }
}
