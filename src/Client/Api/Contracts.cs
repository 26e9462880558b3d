using System.Text.Json;
using System.Text.Json.Serialization;

namespace WebDefense.Client.Api;

// The public REST API's JSON shapes as the dashboard reads them (camelCase on the wire).

public sealed record Me(Guid Id, string Email, Guid TeamId, string TeamName, bool Admin);

public sealed record LoginRequest(string Email, string Password);

public sealed record ModelInfo(
    Guid Id, string Name, string FileName, string Format, string? Architecture, int NumClasses, int[] InputShape,
    float[] Mean, float[] Std, long ParameterCount, string Sha256, long SizeBytes, string[] Warnings, DateTimeOffset CreatedAt);

public sealed record ArchitectureInfo(string Name, string Description);

/// <summary>A data set; <see cref="ClassNames"/> (the folder of label i at index i) only in the answer to uploading a class-folder archive.</summary>
public sealed record DatasetInfo(
    Guid Id, string Name, string Kind, string FileName, int Count, int[] Shape, long[] Classes, string Sha256, long SizeBytes, DateTimeOffset CreatedAt,
    string[]? ClassNames = null);

public sealed record ParameterInfo(string Name, string Kind, JsonElement Default, string Help, double? Min, double? Max, string[]? Choices);

/// <summary>The two kinds of defense (and of run): purify an uploaded model, or train a robust one from a poisoned training set.</summary>
public static class DefenseKinds
{
    public const string PostTraining = "post-training";
    public const string TrainingTime = "training-time";
    public const string Scan = "scan";

    /// <summary>A kind as the API names it; servers from before training-time defenses send none, and all their defenses purify models.</summary>
    public static string Of(string? kind) => string.IsNullOrEmpty(kind) ? PostTraining : kind;
}

/// <summary>The data set kinds the API knows (the "kind" field of an upload and of GET /api/datasets?kind=).</summary>
public static class DatasetKinds
{
    public const string Clean = "clean";
    public const string Test = "test";
    public const string BackdoorTest = "backdoor-test";
    public const string BackdoorSamples = "backdoor-samples";
    public const string PoisonedTrain = "poisoned-train";
}

public sealed record DefenseInfo(string Name, string Title, string Description, string Paper, string[] Needs, string[] Steps, ParameterInfo[] Parameters, string? Kind = null)
{
    public bool NeedsCleanData => Needs.Contains("CleanData");
    public bool NeedsBackdoorSamples => Needs.Contains("BackdoorSamples");
    public bool IsTrainingTime => DefenseKinds.Of(Kind) == DefenseKinds.TrainingTime;

    /// <summary>The title up to its parenthesised explanation: "AdvrBD (training-time: …)" → "AdvrBD".</summary>
    public string ShortTitle => Title.Split(" (", 2)[0];
}

/// <summary>
/// POST /api/runs. A post-training run names the suspect model (<see cref="ModelId"/>); a training-time run names a
/// poisoned training set and an architecture instead. Fields a kind does not use are left out of the JSON.
/// </summary>
public sealed record StartRunRequest(
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] Guid? ModelId,
    string Defense,
    Dictionary<string, JsonElement>? Parameters,
    Guid? CleanDatasetId,
    Guid? TestDatasetId,
    Guid? BackdoorTestDatasetId,
    JsonElement? Trigger,
    Guid? BackdoorSamplesDatasetId,
    int? TargetLabel,
    int? Seed,
    int[]? Seeds,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] Guid? PoisonedTrainDatasetId = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Architecture = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? NumClasses = null);

public sealed record StartRunResponse(Guid[] RunIds, Guid? BatchId);

public sealed record Metrics(double? Acc, double? Asr, double? Ra);

/// <summary>How well a training-time defense found the poisoned training samples (fractions; only when the set carries the truth).</summary>
public sealed record Detection(double? Precision, double? Recall, double? F1, int? Suspected, int? Poisoned, int? TruePositives);

/// <summary>
/// What a post-training run did to the backdoor: <see cref="Outcome"/> removed | reduced | still-present | none-found |
/// not-measured, on <see cref="Basis"/> measured (backdoor test set) | estimated (the scan's reconstructed trigger) | none.
/// </summary>
public sealed record BackdoorOutcome(string Outcome, string Basis, string? Summary, bool? ModelChanged, double? EstimatedAsrBefore, double? EstimatedAsrAfter)
{
    public bool IsEstimate => Basis == "estimated";
}

/// <summary>One label of a scan: its reconstructed trigger's size (pixels), anomaly index and ASR on held-out clean images.</summary>
public sealed record ScanLabel(int Label, double MaskNorm, double AnomalyIndex, bool Flagged, bool ReachedThreshold, double InversionAsr, double? HoldoutAsr, int Epochs);

/// <summary>A backdoor scan's verdict and per-label numbers (the reconstructed triggers are artifacts of the run).</summary>
public sealed record ScanSummary(bool Suspected, int? TargetLabel, int[] FlaggedLabels, double Median, double Mad, double Threshold, double MaxNormRatio,
    double? EstimatedAsr, int InversionImages, int HoldoutImages, double Seconds, string Summary, ScanLabel[] Labels);

/// <summary>
/// A run. Post-training runs have a <see cref="ModelId"/>; training-time runs have none (they train a model of
/// <see cref="Architecture"/> on <see cref="PoisonedTrainDatasetId"/>), their <see cref="Before"/> is the undefended
/// model trained with the same recipe and <see cref="Detection"/> scores the suspected samples.
/// </summary>
public sealed record RunInfo(
    Guid Id, Guid? BatchId, string Status, string Defense, Guid? ModelId, Guid? CleanDatasetId, Guid? TestDatasetId,
    Guid? BackdoorTestDatasetId, Guid? BackdoorSamplesDatasetId, string? Trigger, int? TargetLabel, int Seed,
    double Progress, string? Step, string? Message, Metrics Before, Metrics After, double? Der,
    JsonElement? Chosen, string? ChosenRule, JsonElement Parameters, JsonElement? ResolvedParameters, JsonElement? Findings,
    string? Device, double? WallSeconds, string? Error, DateTimeOffset CreatedAt, DateTimeOffset? StartedAt, DateTimeOffset? FinishedAt,
    string? Kind = null, string? Architecture = null, int? NumClasses = null, Guid? PoisonedTrainDatasetId = null, Detection? Detection = null,
    BackdoorOutcome? Outcome = null, ScanSummary? Scan = null, Guid? BeforeReusedFrom = null)
{
    /// <summary>A scan run: it looks for a backdoor and produces no model.</summary>
    public bool IsScan => Kind == DefenseKinds.Scan;

    public bool IsFinished => Status is "Succeeded" or "Failed" or "Cancelled";

    /// <summary>A training-time run; a run without "kind" (older servers) is one when it names a training set and no model.</summary>
    public bool IsTrainingTime => Kind is null ? ModelId is null && PoisonedTrainDatasetId is not null : Kind == DefenseKinds.TrainingTime;

    /// <summary>The chosen operating point's x (units pruned or epoch), when the run has one.</summary>
    public double? ChosenX => Chosen is { ValueKind: JsonValueKind.Object } c && c.TryGetProperty("x", out var x) && x.ValueKind == JsonValueKind.Number ? x.GetDouble() : null;

    public bool ChosenIsOracle => Chosen is { ValueKind: JsonValueKind.Object } c && c.TryGetProperty("oracle", out var o) && o.ValueKind == JsonValueKind.True;
}

public sealed record RunPage(RunInfo[] Items, int Total, int Page, int PageSize);

/// <summary>
/// One point of a defense's trajectory: validation metrics at x units pruned (or at an epoch, an iteration), and any
/// further named numbers of the phase (<see cref="Values"/>, e.g. AdvrBD's "train_acc", "recall").
/// </summary>
public sealed record TrajectoryPoint(
    double X, string XLabel, double? ValAcc, double? ValAsr, double? ValRa, double? Loss, string? Note, string Phase,
    IReadOnlyDictionary<string, double?>? Values = null)
{
    public double? Value(string name) => Values is not null && Values.TryGetValue(name, out var v) ? v : null;

    // Value equality over the named values too (a record compares dictionaries by reference).
    public bool Equals(TrajectoryPoint? other) =>
        other is not null && X.Equals(other.X) && XLabel == other.XLabel && Nullable.Equals(ValAcc, other.ValAcc) && Nullable.Equals(ValAsr, other.ValAsr)
        && Nullable.Equals(ValRa, other.ValRa) && Nullable.Equals(Loss, other.Loss) && Note == other.Note && Phase == other.Phase
        && (ReferenceEquals(Values, other.Values) || (Values is not null && other.Values is not null && Values.Count == other.Values.Count
            && Values.All(v => other.Values.TryGetValue(v.Key, out var o) && Nullable.Equals(v.Value, o))));

    public override int GetHashCode() => HashCode.Combine(X, XLabel, ValAcc, ValAsr, ValRa, Phase, Values?.Count);
}

public sealed record QueueStatus(
    string Device, int Workers, bool EngineAvailable, int Queued, int Running, int TeamQueued, int TeamRunning, int RunsAhead, double? EstimatedWaitSeconds);

public sealed record TeamInfo(Guid Id, string Name, DateTimeOffset CreatedAt);

public sealed record UserInfo(Guid Id, string Email, Guid TeamId, bool Admin);

public sealed record CreateTeamRequest(string Name);

public sealed record CreateUserRequest(string Email, string Password, Guid TeamId, bool Admin);

public sealed record CreateKeyRequest(string? Name);

public sealed record CreatedKey(Guid Id, Guid UserId, string Name, string Prefix, string Key);

public sealed record KeyInfo(Guid Id, Guid UserId, string Name, string Prefix, DateTimeOffset CreatedAt, DateTimeOffset? RevokedAt);

/// <summary>A file picked in the browser, ready to upload.</summary>
public sealed record UploadFile(string Name, Stream Content, long Size);

/// <summary>Query of the run history (server-side filter, sort and paging).</summary>
public sealed record RunQuery(string? Status = null, string? Defense = null, Guid? ModelId = null, Guid? BatchId = null, string? Sort = null, int Page = 1, int PageSize = 20)
{
    public string ToQueryString()
    {
        var parts = new List<string>();
        void Add(string key, string? value)
        {
            if (!string.IsNullOrEmpty(value)) parts.Add($"{key}={Uri.EscapeDataString(value)}");
        }

        Add("status", Status);
        Add("defense", Defense);
        Add("modelId", ModelId?.ToString());
        Add("batchId", BatchId?.ToString());
        Add("sort", Sort);
        Add("page", Page.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Add("pageSize", PageSize.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return string.Join('&', parts);
    }
}
