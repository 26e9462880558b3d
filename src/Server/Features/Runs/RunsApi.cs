using WebDefense.Core.Defenses;
using System.IO.Compression;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Net.Http.Headers;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using WebDefense.Core.Runs;
using WebDefense.Server.Auth;
using WebDefense.Server.Data;
using WebDefense.Server.Hosting;
using WebDefense.Server.Jobs;

namespace WebDefense.Server.Features.Runs;

public static class RunsApi
{
    public static IEndpointRouteBuilder MapRunsApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/runs").WithTags("Runs").RequireAuthorization();
        api.MapPost("/", StartAsync)
            .WithSummary("Start a defense run (or one per seed in seeds[], a batch); impossible combinations answer 400 at once.")
            .Produces<StartRunResponse>(StatusCodes.Status202Accepted)
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status429TooManyRequests);
        api.MapGet("/", ListAsync).WithSummary("The team's runs: filter by status, defense, kind (post-training|training-time|scan), modelId, batchId; sort = created|status|defense|beforeAcc|afterAcc|beforeAsr|afterAsr|afterRa|der|wallSeconds (prefix - for descending; default -created); paging.");
        api.MapGet("/export.csv", ExportAsync).WithSummary("Every run the filters match (same filters and sort as the list, no paging) as CSV.")
            .Produces(StatusCodes.Status200OK, contentType: "text/csv");
        api.MapGet("/{id:guid}", GetAsync).WithSummary("One run with its progress and metrics. Answers with an ETag; If-None-Match with it answers 304 while nothing changed.")
            .Produces<RunResponse>(StatusCodes.Status200OK).Produces(StatusCodes.Status304NotModified).Produces(StatusCodes.Status404NotFound);
        api.MapDelete("/{id:guid}", DeleteAsync).WithSummary("Delete a finished run and its records.");
        api.MapGet("/{id:guid}/trajectory", TrajectoryAsync).WithSummary("The defense's trajectory points (validation metrics along the sweep).");
        api.MapGet("/{id:guid}/events", Events).WithSummary("Server-sent events: status, step, progress, point, log, metrics, completed, failed.")
            .Produces(StatusCodes.Status200OK, contentType: "text/event-stream");
        api.MapGet("/{id:guid}/artifacts/model", (Guid id, HttpContext http, AppDbContext db, ArtifactStore store, CancellationToken ct) => ArtifactAsync(id, "model", http, db, store, ct))
            .WithSummary("The purified model, in the uploaded format (a training-time run: the trained model as a PyTorch state dict).");
        api.MapGet("/{id:guid}/artifacts/metrics.json", (Guid id, HttpContext http, AppDbContext db, ArtifactStore store, CancellationToken ct) => ArtifactAsync(id, "metrics.json", http, db, store, ct))
            .WithSummary("Metrics before and after, chosen point, parameters (JSON).");
        api.MapGet("/{id:guid}/artifacts/metrics.csv", (Guid id, HttpContext http, AppDbContext db, ArtifactStore store, CancellationToken ct) => ArtifactAsync(id, "metrics.csv", http, db, store, ct))
            .WithSummary("Metrics as CSV.");
        api.MapGet("/{id:guid}/artifacts/suspected.csv", (Guid id, HttpContext http, AppDbContext db, ArtifactStore store, CancellationToken ct) => ArtifactAsync(id, RunJob.SuspectedArtifact, http, db, store, ct))
            .WithSummary("Training-time runs: every training sample with its label, whether it is suspected of being poisoned, its suspicion score (and the truth when the data set had it), as CSV.");
        api.MapGet("/{id:guid}/artifacts/scan/{file}", (Guid id, string file, HttpContext http, AppDbContext db, ArtifactStore store, CancellationToken ct) =>
                ScanArtifact.IsValid(file) ? ArtifactAsync(id, ScanArtifact.Kind(file), http, db, store, ct)
                    : Task.FromResult<IResult>(TypedResults.Problem("scan artifacts are scan.json and trigger-N-mask.png, trigger-N-pattern.png, trigger-N-example.png", statusCode: StatusCodes.Status404NotFound)))
            .WithSummary("Runs that scanned: scan.json (the verdict, per label the mask norm, anomaly index, held-out ASR and the reconstructed trigger as a trigger spec) or a label's trigger image: trigger-N-mask.png, trigger-N-pattern.png, trigger-N-example.png (a held-out clean image stamped with it).");
        api.MapGet("/{id:guid}/artifacts/log", LogAsync).WithSummary("The run's log (text).");
        api.MapGet("/{id:guid}/artifacts.zip", ZipAsync).WithSummary("Every artifact of a finished run in one zip.");
        api.MapPost("/{id:guid}/cancel", CancelAsync).WithSummary("Cancel a queued or running run.");
        api.MapPost("/{id:guid}/rerun", RerunAsync).WithSummary("Queue a new run with the same inputs and parameters.");
        app.MapGet("/api/batches/{batchId:guid}", BatchAsync).WithTags("Runs").RequireAuthorization()
            .WithSummary("A batch's runs with mean ± std of the metrics after the defense.");
        app.MapPost("/api/batches/{batchId:guid}/cancel", CancelBatchAsync).WithTags("Runs").RequireAuthorization()
            .WithSummary("Cancel every queued or running run of a batch; finished runs stay as they are.");
        return app;
    }

    private static async Task<Results<Accepted<StartRunResponse>, ValidationProblem, ProblemHttpResult>> StartAsync(
        StartRunRequest request, HttpContext http, AppDbContext db, RunQueue queue, IOptions<WebDefenseOptions> options, CancellationToken ct)
    {
        var team = http.User.TeamId();
        var validated = await RunValidation.ValidateAsync(request, team, db, ct);
        if (validated.Errors.Count > 0) return TypedResults.ValidationProblem(validated.Errors);

        var seeds = request.Seeds is { Length: > 0 } s ? s.Distinct().ToArray() : [request.Seed ?? 0];
        var cap = options.Value.MaxActiveRunsPerTeam;
        var active = await db.Runs.CountAsync(r => r.TeamId == team && (r.Status == RunStatus.Queued || r.Status == RunStatus.Running), ct);
        if (active + seeds.Length > cap)
        {
            return TypedResults.Problem(
                $"Your team has {active} runs queued or running and may have at most {cap} at once; this request adds {seeds.Length}. " +
                "Wait for some to finish, or cancel some (POST /api/runs/{id}/cancel, POST /api/batches/{id}/cancel).",
                statusCode: StatusCodes.Status429TooManyRequests, title: "Too many active runs",
                extensions: new Dictionary<string, object?> { ["cap"] = cap, ["active"] = active, ["requested"] = seeds.Length });
        }

        var batch = seeds.Length > 1 ? Guid.NewGuid() : (Guid?)null;
        // A millisecond apart: the stored times keep 0.1 ms, and the queue takes a team's runs in this order.
        var now = DateTimeOffset.UtcNow;
        var runs = seeds.Select((seed, i) => new RunRecord
        {
            CreatedAt = now.AddMilliseconds(i),
            TeamId = team,
            BatchId = batch,
            // A valid request with an architecture is a training-time run (RunValidation refuses one for other defenses).
            Kind = DefenseCatalog.IsScan(request.Defense) ? RunKinds.Scan : validated.Architecture is null ? RunKinds.PostTraining : RunKinds.TrainingTime,
            ModelId = request.ModelId,
            Architecture = validated.Architecture,
            NumClasses = validated.NumClasses,
            PoisonedTrainDatasetId = request.PoisonedTrainDatasetId,
            Defense = request.Defense.ToLowerInvariant(),
            Status = RunStatus.Queued,
            CleanDatasetId = request.CleanDatasetId == Guid.Empty ? null : request.CleanDatasetId,
            TestDatasetId = request.TestDatasetId,
            BackdoorTestDatasetId = request.BackdoorTestDatasetId,
            BackdoorSamplesDatasetId = request.BackdoorSamplesDatasetId,
            TriggerJson = validated.TriggerJson,
            TargetLabel = request.TargetLabel,
            Seed = seed,
            RequestedParameters = JsonSerializer.Serialize(request.Parameters ?? new()),
            Message = "queued",
        }).ToList();
        db.Runs.AddRange(runs);
        await db.SaveChangesAsync(ct);
        foreach (var run in runs) queue.Enqueue(run.Id);
        return TypedResults.Accepted($"/api/runs/{runs[0].Id}", new StartRunResponse(runs.Select(r => r.Id).ToArray(), batch));
    }

    private static async Task<Results<Ok<RunPage>, ValidationProblem>> ListAsync(
        HttpContext http, AppDbContext db, string? status, string? defense, string? kind, Guid? modelId, Guid? batchId, string? sort, int? page, int? pageSize, CancellationToken ct)
    {
        if (FilterErrors(status, defense, kind, sort) is { Count: > 0 } errors) return TypedResults.ValidationProblem(errors);
        var query = Filter(db, http.User.TeamId(), status, defense, kind, modelId, batchId, sort);
        var size = Math.Clamp(pageSize ?? 50, 1, 500);
        var number = Math.Max(page ?? 1, 1);
        var total = await query.CountAsync(ct);
        var items = await query.Skip((number - 1) * size).Take(size).ToListAsync(ct);
        return TypedResults.Ok(new RunPage(items.Select(r => RunResponse.From(r, http.User)).ToArray(), total, number, size));
    }

    private static async Task<IResult> ExportAsync(
        HttpContext http, AppDbContext db, string? status, string? defense, string? kind, Guid? modelId, Guid? batchId, string? sort, CancellationToken ct)
    {
        if (FilterErrors(status, defense, kind, sort) is { Count: > 0 } errors) return TypedResults.ValidationProblem(errors);
        var runs = await Filter(db, http.User.TeamId(), status, defense, kind, modelId, batchId, sort).Take(ExportLimit).ToListAsync(ct);
        var models = await db.Models.AsNoTracking().Where(m => m.TeamId == http.User.TeamId()).ToDictionaryAsync(m => m.Id, m => m.Name, ct);
        return TypedResults.Text(RunCsv.Write(runs, models), "text/csv; charset=utf-8");
    }

    private static readonly string[] SortKeys = ["created", "status", "defense", "beforeAcc", "afterAcc", "beforeAsr", "afterAsr", "afterRa", "der", "wallSeconds"];

    /// <summary>The values the list and export filters take, by query parameter (the OpenAPI document lists them as enums).</summary>
    public static IReadOnlyDictionary<string, string[]> FilterValues { get; } = new Dictionary<string, string[]>
    {
        ["status"] = Enum.GetNames<RunStatus>(),
        ["kind"] = [RunKinds.PostTraining, RunKinds.TrainingTime, RunKinds.Scan],
        ["defense"] = [.. DefenseCatalog.All.Select(d => d.Name), .. DefenseCatalog.TrainingTime.Select(d => d.Name), DefenseCatalog.Scan.Name],
        ["sort"] = [.. SortKeys, .. SortKeys.Select(k => "-" + k)],
    };

    /// <summary>An unknown filter value is an error that lists the allowed ones, never a filter silently dropped.</summary>
    private static Dictionary<string, string[]> FilterErrors(string? status, string? defense, string? kind, string? sort)
    {
        var errors = new Dictionary<string, string[]>();
        void Check(string name, string? value, IReadOnlyCollection<string> allowed)
        {
            if (value is not null && !allowed.Contains(value, StringComparer.OrdinalIgnoreCase)) errors[name] = [$"'{value}' is not one of: {string.Join(", ", allowed)}"];
        }

        Check("status", status, FilterValues["status"]);
        Check("kind", kind, FilterValues["kind"]);
        Check("defense", defense, FilterValues["defense"]);
        Check("sort", sort?.TrimStart('-'), SortKeys);
        return errors;
    }

    private const int ExportLimit = 100_000;

    /// <summary>The team's runs with the list filters and sort: created|status|defense|beforeAcc|afterAcc|beforeAsr|afterAsr|afterRa|der|wallSeconds, "-" for descending (default -created).</summary>
    private static IQueryable<RunRecord> Filter(AppDbContext db, Guid team, string? status, string? defense, string? kind, Guid? modelId, Guid? batchId, string? sort)
    {
        var query = db.Runs.AsNoTracking().Where(r => r.TeamId == team);
        if (kind is not null) query = query.Where(r => r.Kind == kind.ToLower());
        if (status is not null && Enum.TryParse<RunStatus>(status, ignoreCase: true, out var st)) query = query.Where(r => r.Status == st); // FilterErrors checked the name
        if (defense is not null) query = query.Where(r => r.Defense == defense.ToLower());
        if (modelId is not null) query = query.Where(r => r.ModelId == modelId);
        if (batchId is not null) query = query.Where(r => r.BatchId == batchId);
        var descending = sort?.StartsWith('-') ?? true;
        var key = sort?.TrimStart('-').ToLowerInvariant() ?? "created";
        IOrderedQueryable<RunRecord> ordered = key switch
        {
            "status" => Order(query, r => r.Status, descending),
            "defense" => Order(query, r => r.Defense, descending),
            "beforeacc" => Order(query, r => r.BeforeAcc, descending),
            "afteracc" => Order(query, r => r.AfterAcc, descending),
            "beforeasr" => Order(query, r => r.BeforeAsr, descending),
            "afterasr" => Order(query, r => r.AfterAsr, descending),
            "afterra" => Order(query, r => r.AfterRa, descending),
            "der" => Order(query, r => r.Der, descending),
            "wallseconds" => Order(query, r => r.WallSeconds, descending),
            _ => Order(query, r => r.CreatedAt, descending),
        };
        return key == "created" ? ordered : ordered.ThenByDescending(r => r.CreatedAt);
    }

    private static IOrderedQueryable<RunRecord> Order<TKey>(IQueryable<RunRecord> query, System.Linq.Expressions.Expression<Func<RunRecord, TKey>> key, bool descending) =>
        descending ? query.OrderByDescending(key) : query.OrderBy(key);

    private static Task<RunRecord?> FindAsync(Guid id, HttpContext http, AppDbContext db, CancellationToken ct)
    {
        var team = http.User.TeamId();
        return db.Runs.AsNoTracking().FirstOrDefaultAsync(r => r.Id == id && r.TeamId == team, ct);
    }

    /// <summary>
    /// One run, with a strong ETag of the answer: a client polling with If-None-Match gets 304 and no body until anything
    /// it would see (status, progress, step, metrics) changes.
    /// </summary>
    private static async Task<IResult> GetAsync(Guid id, HttpContext http, AppDbContext db, IOptions<JsonOptions> json, CancellationToken ct)
    {
        if (await FindAsync(id, http, db, ct) is not { } run) return TypedResults.NotFound();
        var body = JsonSerializer.SerializeToUtf8Bytes(RunResponse.From(run, http.User), json.Value.SerializerOptions);
        var etag = new EntityTagHeaderValue($"\"{Convert.ToHexStringLower(SHA256.HashData(body).AsSpan(0, 16))}\"");
        http.Response.Headers.ETag = etag.ToString();
        http.Response.Headers.CacheControl = "no-cache";
        if (http.Request.GetTypedHeaders().IfNoneMatch is { Count: > 0 } match && match.Any(m => m.Compare(etag, useStrongComparison: false) || m.Tag == "*"))
        {
            return TypedResults.StatusCode(StatusCodes.Status304NotModified);
        }

        return TypedResults.Bytes(body, "application/json");
    }

    private static async Task<Results<NoContent, NotFound, ProblemHttpResult>> DeleteAsync(Guid id, HttpContext http, AppDbContext db, CancellationToken ct)
    {
        var run = await FindAsync(id, http, db, ct);
        if (run is null) return TypedResults.NotFound();
        if (!run.IsFinished) return TypedResults.Problem("cancel the run first", statusCode: StatusCodes.Status409Conflict, title: "Run not finished");
        await db.TrajectoryPoints.Where(p => p.RunId == id).ExecuteDeleteAsync(ct);
        await db.RunLogs.Where(p => p.RunId == id).ExecuteDeleteAsync(ct);
        await db.RunArtifacts.Where(p => p.RunId == id).ExecuteDeleteAsync(ct);
        await db.Runs.Where(r => r.Id == id).ExecuteDeleteAsync(ct);
        return TypedResults.NoContent();
    }

    private static async Task<Results<Ok<JsonElement[]>, NotFound>> TrajectoryAsync(Guid id, HttpContext http, AppDbContext db, CancellationToken ct)
    {
        if (await FindAsync(id, http, db, ct) is not { } run) return TypedResults.NotFound();
        var points = await db.TrajectoryPoints.AsNoTracking().Where(p => p.RunId == id && p.Attempt == run.Attempt).OrderBy(p => p.Index).Select(p => p.Json).ToListAsync(ct);
        return TypedResults.Ok(points.Select(p => JsonDocument.Parse(p).RootElement.Clone()).ToArray());
    }

    private static async Task<IResult> ArtifactAsync(Guid id, string kind, HttpContext http, AppDbContext db, ArtifactStore store, CancellationToken ct)
    {
        if (await FindAsync(id, http, db, ct) is null) return TypedResults.NotFound();
        var artifact = await db.RunArtifacts.AsNoTracking().FirstOrDefaultAsync(a => a.RunId == id && a.Kind == kind, ct);
        if (artifact is null) return TypedResults.Problem("the run has no such artifact (yet)", statusCode: StatusCodes.Status404NotFound);
        var type = kind.EndsWith(".png", StringComparison.Ordinal) ? "image/png" : kind switch { "metrics.json" or "scan/scan.json" => "application/json", "metrics.csv" or RunJob.SuspectedArtifact => "text/csv", "log" => "text/plain", _ => "application/octet-stream" };
        // Artifacts never change once written: Range requests resume a large download, and the ETag names this file.
        return TypedResults.PhysicalFile(store.PathOf(artifact.StoredName), type, artifact.FileName,
            entityTag: new EntityTagHeaderValue($"\"{artifact.RunId:N}-{artifact.Id}\""), enableRangeProcessing: true);
    }

    private static async Task<IResult> LogAsync(Guid id, HttpContext http, AppDbContext db, ArtifactStore store, CancellationToken ct)
    {
        if (await FindAsync(id, http, db, ct) is null) return TypedResults.NotFound();
        var artifact = await db.RunArtifacts.AsNoTracking().FirstOrDefaultAsync(a => a.RunId == id && a.Kind == "log", ct);
        if (artifact is not null) return TypedResults.PhysicalFile(store.PathOf(artifact.StoredName), "text/plain", "log.txt");
        var lines = await db.RunLogs.AsNoTracking().Where(l => l.RunId == id).OrderBy(l => l.Id).ToListAsync(ct);
        return TypedResults.Text(string.Join('\n', lines.Select(l => $"{l.At:O} {l.Message}")) + "\n", "text/plain");
    }

    private static async Task<IResult> ZipAsync(Guid id, HttpContext http, AppDbContext db, ArtifactStore store, CancellationToken ct)
    {
        var run = await FindAsync(id, http, db, ct);
        if (run is null) return TypedResults.NotFound();
        var artifacts = await db.RunArtifacts.AsNoTracking().Where(a => a.RunId == id).ToListAsync(ct);
        if (artifacts.Count == 0) return TypedResults.Problem("the run has no artifacts (yet)", statusCode: StatusCodes.Status404NotFound);
        var buffer = new MemoryStream();
        using (var zip = new ZipArchive(buffer, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var a in artifacts)
            {
                var entry = zip.CreateEntry(a.FileName, CompressionLevel.Fastest);
                await using var target = await entry.OpenAsync(ct);
                await using var source = File.OpenRead(store.PathOf(a.StoredName));
                await source.CopyToAsync(target, ct);
            }

            var runEntry = zip.CreateEntry("run.json");
            await using (var w = await runEntry.OpenAsync(ct))
            {
                await JsonSerializer.SerializeAsync(w, RunResponse.From(run, http.User), RunSpec.Json, ct);
            }
        }

        buffer.Position = 0;
        return TypedResults.File(buffer, "application/zip", $"run-{id:N}.zip");
    }

    private static async Task<Results<Accepted<RunResponse>, NotFound, ProblemHttpResult>> CancelAsync(
        Guid id, HttpContext http, AppDbContext db, RunCancellations cancellations, RunUpdates updates, CancellationToken ct)
    {
        var run = await FindAsync(id, http, db, ct);
        if (run is null) return TypedResults.NotFound();
        if (run.IsFinished) return TypedResults.Problem($"the run already finished ({run.Status})", statusCode: StatusCodes.Status409Conflict, title: "Run finished");
        await CancelOneAsync(id, db, cancellations, updates, ct);
        run = await FindAsync(id, http, db, ct);
        return TypedResults.Accepted($"/api/runs/{id}", RunResponse.From(run!, http.User));
    }

    private static async Task<Results<Accepted<BatchCancelResponse>, NotFound>> CancelBatchAsync(
        Guid batchId, HttpContext http, AppDbContext db, RunCancellations cancellations, RunUpdates updates, CancellationToken ct)
    {
        var team = http.User.TeamId();
        var runs = await db.Runs.AsNoTracking().Where(r => r.TeamId == team && r.BatchId == batchId).Select(r => new { r.Id, r.Status }).ToListAsync(ct);
        if (runs.Count == 0) return TypedResults.NotFound();
        var active = runs.Where(r => r.Status is RunStatus.Queued or RunStatus.Running).Select(r => r.Id).ToList();
        foreach (var id in active) await CancelOneAsync(id, db, cancellations, updates, ct);
        return TypedResults.Accepted($"/api/batches/{batchId}", new BatchCancelResponse(batchId, active.ToArray(), runs.Count - active.Count));
    }

    /// <summary>A queued run is cancelled in the database (its job will not claim it); a running one is told to stop.</summary>
    private static async Task CancelOneAsync(Guid id, AppDbContext db, RunCancellations cancellations, RunUpdates updates, CancellationToken ct)
    {
        var now = DateTimeOffset.UtcNow;
        var queued = await db.Runs.Where(r => r.Id == id && r.Status == RunStatus.Queued)
            .ExecuteUpdateAsync(s => s.SetProperty(r => r.Status, RunStatus.Cancelled).SetProperty(r => r.FinishedAt, now).SetProperty(r => r.Message, "cancelled"), ct);
        if (queued == 0 && !cancellations.Cancel(id))
        {
            // Running in another process (its worker sees the change when it next renews its claim and stops), or a leftover.
            await db.Runs.Where(r => r.Id == id && r.Status == RunStatus.Running)
                .ExecuteUpdateAsync(s => s.SetProperty(r => r.Status, RunStatus.Cancelled).SetProperty(r => r.FinishedAt, now).SetProperty(r => r.Message, "cancelled"), ct);
        }

        if (queued > 0) updates.Publish(id, new RunUpdate("status", "{\"status\":\"Cancelled\"}"));
    }

    private static async Task<Results<Accepted<StartRunResponse>, NotFound, ValidationProblem, ProblemHttpResult>> RerunAsync(
        Guid id, HttpContext http, AppDbContext db, RunQueue queue, IOptions<WebDefenseOptions> options, CancellationToken ct)
    {
        var run = await FindAsync(id, http, db, ct);
        if (run is null) return TypedResults.NotFound();
        var request = new StartRunRequest(run.ModelId, run.Defense,
            JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(run.RequestedParameters), run.CleanDatasetId, run.TestDatasetId,
            run.BackdoorTestDatasetId, run.TriggerJson is null ? null : JsonDocument.Parse(run.TriggerJson).RootElement.Clone(),
            run.BackdoorSamplesDatasetId, run.TargetLabel, run.Seed, null, run.PoisonedTrainDatasetId, run.Architecture, run.NumClasses);
        var result = await StartAsync(request, http, db, queue, options, ct);
        return result.Result switch
        {
            Accepted<StartRunResponse> a => a,
            ValidationProblem v => v,
            ProblemHttpResult p => p,
            _ => TypedResults.NotFound(),
        };
    }

    private static async Task<Results<Ok<BatchSummary>, NotFound>> BatchAsync(Guid batchId, HttpContext http, AppDbContext db, CancellationToken ct)
    {
        var team = http.User.TeamId();
        var runs = await db.Runs.AsNoTracking().Where(r => r.TeamId == team && r.BatchId == batchId).OrderBy(r => r.Seed).ToListAsync(ct);
        if (runs.Count == 0) return TypedResults.NotFound();
        var done = runs.Where(r => r.Status == RunStatus.Succeeded).ToList();
        return TypedResults.Ok(new BatchSummary(batchId, runs.Count,
            runs.GroupBy(r => r.Status.ToString()).ToDictionary(g => g.Key, g => g.Count()),
            BatchSummary.Of(done.Select(r => r.AfterAcc)), BatchSummary.Of(done.Select(r => r.AfterAsr)),
            BatchSummary.Of(done.Select(r => r.AfterRa)), BatchSummary.Of(done.Select(r => r.Der)),
            runs.Select(r => RunResponse.From(r, http.User)).ToArray()));
    }

    private static async Task<IResult> Events(
        Guid id, HttpContext http, AppDbContext db, RunUpdates updates, IOptions<WebDefenseOptions> options, CancellationToken ct)
    {
        var run = await FindAsync(id, http, db, ct);
        if (run is null) return TypedResults.NotFound();
        // With the PostgreSQL queue the run may execute in another process: follow it through the database.
        return TypedResults.ServerSentEvents(options.Value.Storage == StorageKind.Postgres ? RunEventPolling.StreamAsync(run, db, http.User, ct) : Stream(run, updates, http.User, ct));
    }

    private static async IAsyncEnumerable<SseItem<string>> Stream(RunRecord run, RunUpdates updates, System.Security.Claims.ClaimsPrincipal caller, [EnumeratorCancellation] CancellationToken ct)
    {
        var (reader, subscription) = updates.Subscribe(run.Id);
        using (subscription)
        {
            yield return new SseItem<string>(JsonSerializer.Serialize(RunResponse.From(run, caller), RunUpdates.Json), "snapshot");
            if (run.IsFinished) yield break;
            while (true)
            {
                RunUpdate update;
                try
                {
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    timeout.CancelAfter(TimeSpan.FromSeconds(15));
                    if (!await reader.WaitToReadAsync(timeout.Token)) yield break;
                    update = await reader.ReadAsync(ct);
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    update = new RunUpdate("heartbeat", "{}");
                }
                catch (OperationCanceledException)
                {
                    yield break;
                }

                yield return new SseItem<string>(update.Json, update.Type);
                if (update.Type == "status" && update.Json.Contains("\"status\":\"Running\"", StringComparison.Ordinal) is false
                    && Encoding.UTF8.GetByteCount(update.Json) > 0)
                {
                    yield break;
                }
            }
        }
    }
}
