using System.Globalization;
using System.Text;
using System.Text.Json;
using Hangfire;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using WebDefense.Core.Evaluation;
using WebDefense.Core.Runs;
using WebDefense.Server.Data;
using WebDefense.Server.Features.Shared;
using WebDefense.Server.Hosting;

namespace WebDefense.Server.Jobs;

/// <summary>
/// Executes one queued run: claims it (<see cref="RunClaims"/>: no two workers execute a run at once, and a dead
/// worker's run is taken over), hands it to the <see cref="IRunExecutor"/>, persists every event as it arrives,
/// stores the artifacts and records the outcome, all fenced by the attempt number.
/// </summary>
public sealed class RunJob(
    AppDbContext db, IRunExecutor executor, ArtifactStore store, RunClaims claims, RunCancellations cancellations, RunUpdates updates,
    RunDevice device, RunQueue queue, IOptions<WebDefenseOptions> options, ILogger<RunJob> log)
{
    /// <summary>
    /// A run whose worker process crashed (killed by a signal, a native crash, gone without a result) is queued once
    /// more, as a run whose server was killed is; a second crash fails it with the reason. A failure the worker reports
    /// (bad input, a defense error) is not retried: it would fail the same way.
    /// </summary>
    public const int CrashRetries = 1;

    [AutomaticRetry(Attempts = 0)]
    public async Task ExecuteAsync(Guid tokenRunId, CancellationToken jobToken)
    {
        // The job is a token for one queued run; which run it executes is the fair choice at this moment.
        if (await claims.ClaimNextAsync(tokenRunId, jobToken) is not var (runId, attempt))
        {
            log.LogInformation("Job of run {RunId}: nothing left to execute", tokenRunId);
            return;
        }

        Publish(runId, "status", new { status = nameof(RunStatus.Running) });
        var run = await db.Runs.AsNoTracking().FirstAsync(r => r.Id == runId);
        var output = Path.Combine(options.Value.WorkPath, $"{runId:N}-{attempt}");
        using var cts = cancellations.Register(runId, jobToken);
        var watch = claims.Watch(runId, attempt, cts);
        RunExecutionResult result;
        try
        {
            var spec = await BuildSpecAsync(run, output);
            TryDelete(output);
            Directory.CreateDirectory(output);
            log.LogInformation("Run {RunId} started (attempt {Attempt}): {Defense} on {Input}", runId, attempt, run.Defense,
                run.ModelId is { } modelId ? $"model {modelId}" : $"{run.Architecture} trained on data set {run.PoisonedTrainDatasetId}");
            result = await executor.ExecuteAsync(spec, e => OnEventAsync(runId, attempt, e), cts.Token);
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
            result = new RunExecutionResult(false, true, null, null);
        }
        catch (Exception e)
        {
            log.LogError(e, "Run {RunId} could not be executed", runId);
            result = new RunExecutionResult(false, false, null, e.Message);
        }
        finally
        {
            cancellations.Unregister(runId);
            await watch.DisposeAsync();
        }

        if (watch.Lost)
        {
            // Cancelled through another process, or taken over: the run's record is not this attempt's to write.
            TryDelete(output);
            return;
        }

        if (jobToken.IsCancellationRequested)
        {
            // This process is stopping: the run goes back to the queue (Hangfire re-queues the job) rather than failing.
            await claims.ReleaseAsync(runId, attempt);
            TryDelete(output);
            log.LogInformation("Run {RunId} re-queued: this worker is stopping", runId);
            jobToken.ThrowIfCancellationRequested();
        }

        if (result.Crashed && attempt <= CrashRetries && await claims.ReleaseAsync(runId, attempt,
                $"re-queued: {result.Error} (retry {attempt} of {CrashRetries})"))
        {
            TryDelete(output);
            log.LogWarning("Run {RunId} re-queued after its worker process crashed: {Error}", runId, result.Error);
            Publish(runId, "status", new { status = nameof(RunStatus.Queued) });
            queue.Enqueue(runId);
            return;
        }

        if (result.Crashed && attempt > CrashRetries) result = result with { Error = $"{result.Error} (again, after {CrashRetries} retry)" };
        await FinishAsync(runId, attempt, result, output);
    }

    private async Task<RunSpec> BuildSpecAsync(RunRecord run, string output)
    {
        var ids = new[] { run.CleanDatasetId, run.TestDatasetId, run.BackdoorTestDatasetId, run.BackdoorSamplesDatasetId, run.PoisonedTrainDatasetId }
            .OfType<Guid>().ToArray();
        var datasets = await db.Datasets.AsNoTracking().Where(d => ids.Contains(d.Id)).ToDictionaryAsync(d => d.Id);
        RunDatasetInput? Input(Guid? id) => id is { } key && datasets.TryGetValue(key, out var d)
            ? new RunDatasetInput { Path = store.PathOf(d.StoredName), FileName = d.FileName }
            : null;

        return new RunSpec
        {
            RunId = run.Id,
            Defense = run.Defense,
            Parameters = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(run.RequestedParameters) ?? new(),
            Seed = run.Seed,
            Model = await ModelInputAsync(run, datasets),
            PoisonedTrain = Input(run.PoisonedTrainDatasetId),
            CleanData = Input(run.CleanDatasetId),
            TestSet = Input(run.TestDatasetId),
            BackdoorTestSet = Input(run.BackdoorTestDatasetId),
            BackdoorSamples = Input(run.BackdoorSamplesDatasetId),
            TriggerJson = run.TriggerJson,
            TargetLabel = run.TargetLabel,
            OutputDirectory = output,
            Threads = options.Value.TorchThreads > 0 ? options.Value.TorchThreads : Environment.ProcessorCount,
            Device = device.Resolved,
            KnownBefore = await KnownBeforeAsync(run, datasets),
        };
    }

    /// <summary>The earlier run whose "before" metrics this run reuses (set by <see cref="KnownBeforeAsync"/>).</summary>
    private Guid? _beforeSource;

    /// <summary>
    /// The "before" metrics of the latest succeeded post-training run of the same team on the same model (same file,
    /// architecture, input and normalisation), the same test and backdoor test sets (same files), trigger and target
    /// label, computed on the same kind of device: evaluation is deterministic, so evaluating again would give the same
    /// numbers. Read from that run's metrics.json (its exact counts); null when there is none or it cannot be read.
    /// </summary>
    private async Task<WebDefense.Core.Evaluation.BackdoorMetrics?> KnownBeforeAsync(RunRecord run, Dictionary<Guid, DatasetRecord> datasets)
    {
        if (run.Kind != RunKinds.PostTraining || run.ModelId is not { } modelId || run.TestDatasetId is not { } testId) return null;
        var model = await db.Models.AsNoTracking().FirstAsync(m => m.Id == modelId);
        var testSha = datasets[testId].Sha256;
        var backdoorSha = run.BackdoorTestDatasetId is { } b ? datasets[b].Sha256 : null;
        var sameModels = db.Models.Where(m => m.TeamId == run.TeamId && m.Sha256 == model.Sha256 && m.Architecture == model.Architecture
            && m.Channels == model.Channels && m.Height == model.Height && m.Width == model.Width && m.Mean == model.Mean && m.Std == model.Std).Select(m => (Guid?)m.Id);
        var sameTests = db.Datasets.Where(d => d.TeamId == run.TeamId && d.Sha256 == testSha).Select(d => (Guid?)d.Id);
        var sameBackdoorTests = db.Datasets.Where(d => d.TeamId == run.TeamId && d.Sha256 == backdoorSha).Select(d => (Guid?)d.Id);
        var kind = WebDefense.Core.Runtime.ComputeDevice.KindOf(device.Resolved);
        var candidates = await db.Runs.AsNoTracking()
            .Where(r => r.TeamId == run.TeamId && r.Id != run.Id && r.Kind == RunKinds.PostTraining && r.Status == RunStatus.Succeeded && r.BeforeAcc != null
                && sameModels.Contains(r.ModelId) && sameTests.Contains(r.TestDatasetId)
                && (backdoorSha == null ? r.BackdoorTestDatasetId == null : sameBackdoorTests.Contains(r.BackdoorTestDatasetId))
                && r.TriggerJson == run.TriggerJson && r.TargetLabel == run.TargetLabel)
            .OrderByDescending(r => r.FinishedAt).Select(r => new { r.Id, r.Device }).Take(20).ToListAsync();
        foreach (var candidate in candidates.Where(c => c.Device is { } d && WebDefense.Core.Runtime.ComputeDevice.KindOf(d) == kind))
        {
            var artifact = await db.RunArtifacts.AsNoTracking().FirstOrDefaultAsync(a => a.RunId == candidate.Id && a.Kind == "metrics.json");
            if (artifact is null) continue;
            try
            {
                using var file = File.OpenRead(store.PathOf(artifact.StoredName));
                using var json = await JsonDocument.ParseAsync(file);
                if (json.RootElement.TryGetProperty("before", out var before) && before.ValueKind == JsonValueKind.Object
                    && before.Deserialize<WebDefense.Core.Evaluation.BackdoorMetrics>(RunSpec.Json) is { } metrics)
                {
                    _beforeSource = candidate.Id;
                    return metrics;
                }
            }
            catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
            {
                log.LogWarning("Run {RunId}: the metrics of run {Source} could not be read ({Message}); evaluating again", run.Id, candidate.Id, e.Message);
            }
        }

        return null;
    }

    /// <summary>
    /// The uploaded model and its declaration; for a training-time run only the declaration: the architecture, the class
    /// count and the training set's image shape, pixels in [0, 1] without further normalisation (mean 0, std 1), as the attack lab trains.
    /// </summary>
    private async Task<RunModelInput> ModelInputAsync(RunRecord run, Dictionary<Guid, DatasetRecord> datasets)
    {
        if (run.Kind == RunKinds.TrainingTime)
        {
            var train = datasets[run.PoisonedTrainDatasetId ?? throw new InvalidOperationException("a training-time run without its training set")];
            var input = WebDefense.Core.Data.InputSpec.Create(train.Channels, train.Height, train.Width);
            return new RunModelInput
            {
                Architecture = run.Architecture,
                NumClasses = run.NumClasses ?? train.MaxLabel + 1,
                InputShape = [input.Channels, input.Height, input.Width],
                Mean = input.Mean,
                Std = input.Std,
            };
        }

        var model = await db.Models.AsNoTracking().FirstAsync(m => m.Id == run.ModelId);
        return new RunModelInput
        {
            Path = store.PathOf(model.StoredName),
            Architecture = model.Architecture,
            NumClasses = model.NumClasses,
            InputShape = [model.Channels, model.Height, model.Width],
            Mean = FormParsing.Split(model.Mean),
            Std = FormParsing.Split(model.Std),
        };
    }

    private async Task OnEventAsync(Guid runId, int attempt, RunEvent e)
    {
        var json = JsonSerializer.Serialize(e, RunUpdates.Json);
        var mine = db.Runs.Where(r => r.Id == runId && r.Attempt == attempt && r.Status == RunStatus.Running);
        switch (e)
        {
            case ProgressEvent p:
                await mine.ExecuteUpdateAsync(s => s
                    .SetProperty(r => r.Progress, Math.Clamp(p.Progress, 0, 1)).SetProperty(r => r.Step, p.Step).SetProperty(r => r.Message, p.Message));
                break;
            case StepEvent st:
                await mine.ExecuteUpdateAsync(s => s.SetProperty(r => r.Step, st.Step));
                break;
            case PointEvent pt:
                var index = await db.TrajectoryPoints.CountAsync(x => x.RunId == runId && x.Attempt == attempt);
                db.TrajectoryPoints.Add(new TrajectoryPointRecord { RunId = runId, Attempt = attempt, Index = index, Json = JsonSerializer.Serialize(pt.Point, RunSpec.Json) });
                await db.SaveChangesAsync();
                break;
            case LogEvent l:
                db.RunLogs.Add(new RunLogRecord { RunId = runId, At = l.At, Message = l.Message });
                await db.SaveChangesAsync();
                break;
            case MetricsEvent m when m.Stage == "before":
                await mine.ExecuteUpdateAsync(s => s
                    .SetProperty(r => r.BeforeAcc, m.Metrics.Acc).SetProperty(r => r.BeforeAsr, m.Metrics.Asr).SetProperty(r => r.BeforeRa, m.Metrics.Ra));
                break;
            case MetricsEvent m:
                await mine.ExecuteUpdateAsync(s => s
                    .SetProperty(r => r.AfterAcc, m.Metrics.Acc).SetProperty(r => r.AfterAsr, m.Metrics.Asr).SetProperty(r => r.AfterRa, m.Metrics.Ra));
                break;
        }

        Publish(runId, TypeOf(e), json);
    }

    private async Task FinishAsync(Guid runId, int attempt, RunExecutionResult result, string output)
    {
        var run = await db.Runs.FirstAsync(r => r.Id == runId);
        if (run.Status != RunStatus.Running || run.Attempt != attempt)
        {
            log.LogInformation("Run {RunId} changed while attempt {Attempt} executed (now {Status}, attempt {Current}); that attempt's result is discarded",
                runId, attempt, run.Status, run.Attempt);
            TryDelete(output);
            return;
        }

        run.FinishedAt = DateTimeOffset.UtcNow;
        run.LeaseExpiresAt = null;
        if (result is { Succeeded: true, Completed: { } done })
        {
            try
            {
                await StoreArtifactsAsync(run, done, output);
                run.Status = RunStatus.Succeeded;
                run.Progress = 1;
                run.Message = "done";
                Apply(run, done);
            }
            catch (Exception e)
            {
                log.LogError(e, "Run {RunId}: storing artifacts failed", runId);
                run.Status = RunStatus.Failed;
                run.Error = $"storing the artifacts failed: {e.Message}";
            }
        }
        else if (result.Cancelled)
        {
            run.Status = RunStatus.Cancelled;
            run.Message = "cancelled";
        }
        else
        {
            run.Status = RunStatus.Failed;
            run.Error = result.Error ?? "the worker failed without a reason";
        }

        try
        {
            // Status and Attempt are concurrency tokens: a cancel or takeover since the check above wins.
            await db.SaveChangesAsync();
        }
        catch (DbUpdateConcurrencyException)
        {
            log.LogInformation("Run {RunId} changed while attempt {Attempt} was being recorded; that attempt's result is discarded", runId, attempt);
            TryDelete(output);
            return;
        }

        TryDelete(output);
        log.LogInformation("Run {RunId} finished: {Status} {Error}", runId, run.Status, run.Error);
        Publish(runId, "status", new { status = run.Status.ToString(), error = run.Error });
    }

    private void Apply(RunRecord run, CompletedEvent done)
    {
        run.BeforeReusedFrom = done.BeforeReused ? _beforeSource : null;
        (run.BeforeAcc, run.BeforeAsr, run.BeforeRa) = Metrics(done.Before, run.BeforeAcc, run.BeforeAsr, run.BeforeRa);
        (run.AfterAcc, run.AfterAsr, run.AfterRa) = Metrics(done.After, run.AfterAcc, run.AfterAsr, run.AfterRa);
        run.Der = done.Der;
        run.ChosenPoint = JsonSerializer.Serialize(done.Chosen, RunSpec.Json);
        run.ChosenRule = done.Chosen.Rule;
        run.ResolvedParameters = JsonSerializer.Serialize(done.ResolvedParameters, RunSpec.Json);
        run.Findings = JsonSerializer.Serialize(done.Findings, RunSpec.Json);
        run.WallSeconds = done.WallSeconds;
        run.Device = done.Device;
        run.SuspectedCount = done.Suspected;
        if (done.Outcome is { } o)
        {
            (run.Outcome, run.OutcomeBasis, run.OutcomeSummary, run.ModelChanged) = (o.Outcome, o.Basis, o.Summary, o.ModelChanged);
        }

        (run.EstimatedAsrBefore, run.EstimatedAsrAfter) = (done.EstimatedAsrBefore, done.EstimatedAsrAfter);
        run.Scan = done.Scan is null ? null : JsonSerializer.Serialize(done.Scan, RunSpec.Json);
        if (done.Detection is { } d)
        {
            (run.PoisonedCount, run.TruePositives, run.DetectionPrecision, run.DetectionRecall) = (d.Poisoned, d.TruePositives, d.Precision, d.Recall);
        }
    }

    private static (double?, double?, double?) Metrics(BackdoorMetrics? m, double? acc, double? asr, double? ra) =>
        m is null ? (acc, asr, ra) : (m.Acc, m.Asr, m.Ra);

    private async Task StoreArtifactsAsync(RunRecord run, CompletedEvent done, string output)
    {
        var files = new List<(string Kind, string FileName, string Path)>();
        if (done.ModelFile is { } modelFile)
        {
            var prefix = run.Kind == RunKinds.TrainingTime ? "trained" : "purified";
            files.Add(("model", $"{prefix}-{run.Id:N}{ArtifactStore.SafeExtension(modelFile)}", Path.Combine(output, Path.GetFileName(modelFile))));
        }

        foreach (var file in done.ScanFiles ?? [])
        {
            // Only the names the scan writes (scan.json, trigger-N-mask|pattern|example.png) become artifacts.
            var name = Path.GetFileName(file);
            if (ScanArtifact.IsValid(name)) files.Add((ScanArtifact.Kind(name), name, Path.Combine(output, name)));
        }
        if (done.SuspectedFile is { } suspected)
        {
            files.Add((SuspectedArtifact, SuspectedArtifact, Path.Combine(output, Path.GetFileName(suspected))));
        }

        foreach (var name in new[] { "metrics.json", "metrics.csv", "trajectory.json" })
        {
            var path = Path.Combine(output, name);
            if (File.Exists(path)) files.Add((name, name, path));
        }

        var logPath = Path.Combine(output, "log.txt");
        static string Line(RunLogRecord l) => $"{l.At.ToString("O", CultureInfo.InvariantCulture)} {l.Message}";
        if (!File.Exists(logPath))
        {
            var lines = await db.RunLogs.AsNoTracking().Where(l => l.RunId == run.Id).OrderBy(l => l.Id).ToListAsync();
            await File.WriteAllLinesAsync(logPath, lines.Select(Line), Encoding.UTF8);
        }
        else if (run.Attempt > 1)
        {
            // The worker's log covers this attempt; the history before it (interrupted attempts, the takeover) goes first.
            var claimedAt = run.StartedAt;
            var earlier = await db.RunLogs.AsNoTracking().Where(l => l.RunId == run.Id && l.At <= claimedAt).OrderBy(l => l.Id).ToListAsync();
            await File.WriteAllTextAsync(logPath, string.Concat(earlier.Select(l => Line(l) + "\n")) + await File.ReadAllTextAsync(logPath), new UTF8Encoding(false));
        }

        files.Add(("log", "log.txt", logPath));
        foreach (var (kind, fileName, path) in files)
        {
            if (!File.Exists(path)) throw new FileNotFoundException($"the worker did not write {Path.GetFileName(path)}");
            var sha = ArtifactStore.Hash(path);
            var size = new FileInfo(path).Length;
            var stored = store.Add(path, sha, fileName, move: false);
            db.RunArtifacts.Add(new RunArtifactRecord { RunId = run.Id, Kind = kind, FileName = fileName, Sha256 = sha, StoredName = stored, SizeBytes = size });
        }
    }

    /// <summary>The artifact kind (and file name) of a training-time run's per-sample suspicion list.</summary>
    public const string SuspectedArtifact = RunWorker.SuspectedSamplesFile;

    private void Publish(Guid runId, string type, object payload) =>
        updates.Publish(runId, new RunUpdate(type, payload as string ?? JsonSerializer.Serialize(payload, RunUpdates.Json)));

    private static string TypeOf(RunEvent e) => e switch
    {
        StepEvent => "step",
        ProgressEvent => "progress",
        PointEvent => "point",
        LogEvent => "log",
        MetricsEvent => "metrics",
        CompletedEvent => "completed",
        FailedEvent => "failed",
        _ => "event",
    };

    private void TryDelete(string directory)
    {
        try
        {
            if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
        }
        catch (IOException e)
        {
            log.LogWarning("Could not delete {Directory}: {Message}", directory, e.Message);
        }
    }
}
