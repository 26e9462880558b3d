using System.Text.Json;
using WebDefense.Server.Data;

namespace WebDefense.Server.Features.Runs;

/// <summary>
/// Start one run, or one run per seed when <see cref="Seeds"/> is given (a batch). A post-training defense takes
/// <see cref="ModelId"/> and clean data; a training-time defense (advrbd) takes <see cref="PoisonedTrainDatasetId"/>,
/// <see cref="Architecture"/> and optionally <see cref="NumClasses"/> instead.
/// </summary>
public sealed record StartRunRequest(
    Guid? ModelId,
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
    Guid? PoisonedTrainDatasetId = null,
    string? Architecture = null,
    int? NumClasses = null);

public sealed record StartRunResponse(Guid[] RunIds, Guid? BatchId);

public sealed record MetricsResponse(double? Acc, double? Asr, double? Ra);

/// <summary>Detection of poisoned training samples (fractions), when the training set carried the truth.</summary>
public sealed record DetectionResponse(double Precision, double Recall, double F1, int Suspected, int Poisoned, int TruePositives)
{
    public static DetectionResponse? From(RunRecord r) =>
        r is { DetectionPrecision: { } p, DetectionRecall: { } rec, SuspectedCount: { } s, PoisonedCount: { } n, TruePositives: { } tp }
            ? new(p, rec, p + rec > 0 ? 2 * p * rec / (p + rec) : 0, s, n, tp)
            : null;
}

/// <summary>
/// What a post-training run did to the backdoor: outcome removed | reduced | still-present | none-found | not-measured;
/// basis measured (backdoor test set) | estimated (the scan's reconstructed trigger on held-out clean images) | none.
/// </summary>
public sealed record OutcomeResponse(string Outcome, string Basis, string? Summary, bool? ModelChanged, double? EstimatedAsrBefore, double? EstimatedAsrAfter)
{
    public static OutcomeResponse? From(RunRecord r) => r.Outcome is { } o
        ? new(o, r.OutcomeBasis ?? "none", r.OutcomeSummary, r.ModelChanged, r.EstimatedAsrBefore, r.EstimatedAsrAfter)
        : null;
}

public sealed record RunResponse(
    Guid Id, Guid? BatchId, string Status, string Defense, Guid? ModelId, Guid? CleanDatasetId, Guid? TestDatasetId,
    Guid? BackdoorTestDatasetId, Guid? BackdoorSamplesDatasetId, string? Trigger, int? TargetLabel, int Seed,
    double Progress, string? Step, string? Message, MetricsResponse Before, MetricsResponse After, double? Der,
    JsonElement? Chosen, string? ChosenRule, JsonElement Parameters, JsonElement? ResolvedParameters, JsonElement? Findings,
    string? Device, double? WallSeconds, string? Error, DateTimeOffset CreatedAt, DateTimeOffset? StartedAt, DateTimeOffset? FinishedAt,
    string? Worker, int Attempt, string Kind, string? Architecture, int? NumClasses, Guid? PoisonedTrainDatasetId, DetectionResponse? Detection,
    OutcomeResponse? Outcome, JsonElement? Scan, Guid? BeforeReusedFrom)
{
    /// <summary>The run as its team sees it; <see cref="Worker"/> (host:pid) only for admins.</summary>
    public static RunResponse From(RunRecord r, System.Security.Claims.ClaimsPrincipal? caller) => new(
        r.Id, r.BatchId, r.Status.ToString(), r.Defense, r.ModelId, r.CleanDatasetId, r.TestDatasetId, r.BackdoorTestDatasetId,
        r.BackdoorSamplesDatasetId, r.TriggerJson, r.TargetLabel, r.Seed, r.Progress, r.Step, r.Message,
        new MetricsResponse(r.BeforeAcc, r.BeforeAsr, r.BeforeRa), new MetricsResponse(r.AfterAcc, r.AfterAsr, r.AfterRa), r.Der,
        Parse(r.ChosenPoint), r.ChosenRule, Parse(r.RequestedParameters) ?? default, Parse(r.ResolvedParameters), Parse(r.Findings),
        r.Device, r.WallSeconds, r.Error, r.CreatedAt, r.StartedAt, r.FinishedAt, caller?.IsInRole(WebDefense.Server.Auth.AuthServices.AdminRole) == true ? r.Worker : null, r.Attempt,
        r.Kind, r.Architecture, r.NumClasses, r.PoisonedTrainDatasetId, DetectionResponse.From(r), OutcomeResponse.From(r), Parse(r.Scan), r.BeforeReusedFrom);

    private static JsonElement? Parse(string? json) => json is null ? null : JsonDocument.Parse(json).RootElement.Clone();
}

public sealed record RunPage(RunResponse[] Items, int Total, int Page, int PageSize);

public sealed record MeanStd(double? Mean, double? Std, int Count);

public sealed record BatchSummary(Guid BatchId, int Runs, Dictionary<string, int> ByStatus, MeanStd AfterAcc, MeanStd AfterAsr, MeanStd AfterRa, MeanStd Der, RunResponse[] Items)
{
    public static MeanStd Of(IEnumerable<double?> values)
    {
        var v = values.Where(x => x.HasValue).Select(x => x!.Value).ToArray();
        if (v.Length == 0) return new MeanStd(null, null, 0);
        var mean = v.Average();
        var std = v.Length > 1 ? Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Length - 1)) : 0;
        return new MeanStd(mean, std, v.Length);
    }
}

/// <summary>What POST /api/batches/{id}/cancel did: the runs it cancelled (queued or running) and how many had already finished.</summary>
public sealed record BatchCancelResponse(Guid BatchId, Guid[] Cancelled, int AlreadyFinished);
