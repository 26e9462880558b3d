using System.Text.Json;

namespace WebDefense.Client.Api;

// The public REST API's JSON shapes as the dashboard reads them (camelCase on the wire).

public sealed record Me(Guid Id, string Email, Guid TeamId, string TeamName, bool Admin);

public sealed record LoginRequest(string Email, string Password);

public sealed record ModelInfo(
    Guid Id, string Name, string FileName, string Format, string? Architecture, int NumClasses, int[] InputShape,
    float[] Mean, float[] Std, long ParameterCount, string Sha256, long SizeBytes, string[] Warnings, DateTimeOffset CreatedAt);

public sealed record ArchitectureInfo(string Name, string Description);

public sealed record DatasetInfo(
    Guid Id, string Name, string Kind, string FileName, int Count, int[] Shape, long[] Classes, string Sha256, long SizeBytes, DateTimeOffset CreatedAt);

public sealed record ParameterInfo(string Name, string Kind, JsonElement Default, string Help, double? Min, double? Max, string[]? Choices);

public sealed record DefenseInfo(string Name, string Title, string Description, string Paper, string[] Needs, string[] Steps, ParameterInfo[] Parameters)
{
    public bool NeedsCleanData => Needs.Contains("CleanData");
    public bool NeedsBackdoorSamples => Needs.Contains("BackdoorSamples");
}

public sealed record StartRunRequest(
    Guid ModelId,
    string Defense,
    Dictionary<string, JsonElement>? Parameters,
    Guid? CleanDatasetId,
    Guid? TestDatasetId,
    Guid? BackdoorTestDatasetId,
    JsonElement? Trigger,
    Guid? BackdoorSamplesDatasetId,
    int? TargetLabel,
    int? Seed,
    int[]? Seeds);

public sealed record StartRunResponse(Guid[] RunIds, Guid? BatchId);

public sealed record Metrics(double? Acc, double? Asr, double? Ra);

public sealed record RunInfo(
    Guid Id, Guid? BatchId, string Status, string Defense, Guid ModelId, Guid? CleanDatasetId, Guid? TestDatasetId,
    Guid? BackdoorTestDatasetId, Guid? BackdoorSamplesDatasetId, string? Trigger, int? TargetLabel, int Seed,
    double Progress, string? Step, string? Message, Metrics Before, Metrics After, double? Der,
    JsonElement? Chosen, string? ChosenRule, JsonElement Parameters, JsonElement? ResolvedParameters, JsonElement? Findings,
    string? Device, double? WallSeconds, string? Error, DateTimeOffset CreatedAt, DateTimeOffset? StartedAt, DateTimeOffset? FinishedAt)
{
    public bool IsFinished => Status is "Succeeded" or "Failed" or "Cancelled";

    /// <summary>The chosen operating point's x (units pruned or epoch), when the run has one.</summary>
    public double? ChosenX => Chosen is { ValueKind: JsonValueKind.Object } c && c.TryGetProperty("x", out var x) && x.ValueKind == JsonValueKind.Number ? x.GetDouble() : null;

    public bool ChosenIsOracle => Chosen is { ValueKind: JsonValueKind.Object } c && c.TryGetProperty("oracle", out var o) && o.ValueKind == JsonValueKind.True;
}

public sealed record RunPage(RunInfo[] Items, int Total, int Page, int PageSize);

/// <summary>One point of a defense's trajectory: validation metrics at x units pruned (or at an epoch).</summary>
public sealed record TrajectoryPoint(double X, string XLabel, double? ValAcc, double? ValAsr, double? ValRa, double? Loss, string? Note, string Phase);

public sealed record QueueStatus(
    string Device, int Workers, bool EngineAvailable, int Queued, int Running, int TeamQueued, int TeamRunning, double? EstimatedWaitSeconds);

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
