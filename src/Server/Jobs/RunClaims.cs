using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using WebDefense.Server.Data;
using WebDefense.Server.Hosting;

namespace WebDefense.Server.Jobs;

/// <summary>
/// A worker's claim on a run, kept in the runs table so that any number of worker processes can share a queue.
/// Claiming sets Queued → Running, Attempt + 1, Worker and LeaseExpiresAt in one conditional update; a Running run
/// whose lease has expired (its worker died) can be claimed again. The executing worker renews the lease every
/// <see cref="Tick"/>; a renewal that matches no row (the run was cancelled, or taken over after this worker
/// stalled past its lease) stops the execution here. The attempt number fences writes: events and the result of an
/// older attempt no longer count. See docs/decisions/0005-shared-queue-and-run-leases.md.
/// </summary>
public sealed class RunClaims(IServiceScopeFactory scopes, IOptions<WebDefenseOptions> options, ILogger<RunClaims> log)
{
    /// <summary>This process, as recorded on the runs it executes: host:pid.</summary>
    public static string WorkerName { get; } = $"{Environment.MachineName}:{Environment.ProcessId}";

    private TimeSpan Lease => TimeSpan.FromSeconds(options.Value.RunLeaseSeconds);

    /// <summary>How often a claim is renewed (a sixth of the lease, 1–5 s).</summary>
    public TimeSpan Tick => TimeSpan.FromSeconds(Math.Clamp(options.Value.RunLeaseSeconds / 6.0, 1, 5));

    /// <summary>
    /// Claims the next run to execute, fairly across teams, and returns it with its attempt number; null when there is
    /// nothing to execute. A Hangfire job is a token, one per queued run: the run it names is not necessarily the one
    /// it executes (see <see cref="NextAsync"/>), so one team's hundred queued runs take turns with another team's
    /// one. While nothing is claimable but a run executes on another worker (its job may have been handed out twice,
    /// or this token belongs to a run that worker took), waits: that worker either finishes or stops renewing, and
    /// then this one takes over.
    /// </summary>
    public async Task<(Guid RunId, int Attempt)?> ClaimNextAsync(Guid tokenRunId, CancellationToken ct)
    {
        var announced = false;
        while (true)
        {
            using (var scope = scopes.CreateScope())
            {
                var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
                for (var tries = 0; tries < 5; tries++)
                {
                    if (await NextAsync(db, DateTimeOffset.UtcNow, ct) is not { } next) break;
                    if (await TryClaimAsync(next, ct) is { } attempt) return (next, attempt);
                    // Another worker claimed it between the choice and the update: choose again.
                }

                var elsewhere = await db.Runs.AsNoTracking()
                    .Where(r => r.Status == RunStatus.Running && r.Worker != WorkerName)
                    .OrderBy(r => r.LeaseExpiresAt).Select(r => new { r.Id, r.Worker, r.LeaseExpiresAt }).FirstOrDefaultAsync(ct);
                if (elsewhere is null) return null;
                if (!announced)
                {
                    log.LogInformation("Job of run {Token}: nothing queued; run {RunId} executes on {Worker} (claim until {Until:O}), waiting in case that worker stops",
                        tokenRunId, elsewhere.Id, elsewhere.Worker, elsewhere.LeaseExpiresAt);
                    announced = true;
                }
            }

            await Task.Delay(Tick, ct);
        }
    }

    /// <summary>
    /// The run to execute next: a run whose worker stopped renewing its claim first (it was dispatched before anything
    /// queued now), then round-robin across teams: the team with the fewest runs executing, among those the team whose
    /// last run started longest ago (never is longest), and that team's oldest queued run.
    /// </summary>
    public static async Task<Guid?> NextAsync(AppDbContext db, DateTimeOffset now, CancellationToken ct)
    {
        var orphan = await db.Runs.AsNoTracking()
            .Where(r => r.Status == RunStatus.Running && (r.LeaseExpiresAt == null || r.LeaseExpiresAt < now))
            .OrderBy(r => r.StartedAt).Select(r => (Guid?)r.Id).FirstOrDefaultAsync(ct);
        if (orphan is not null) return orphan;

        var teams = await db.Runs.AsNoTracking().Where(r => r.Status == RunStatus.Queued).Select(r => r.TeamId).Distinct().ToListAsync(ct);
        if (teams.Count == 0) return null;
        var team = teams[0];
        if (teams.Count > 1)
        {
            var starts = await StartsAsync(db, teams, ct);
            team = teams.OrderBy(t => starts.GetValueOrDefault(t)?.Running ?? 0).ThenBy(t => TurnOrder(t, starts)).First();
        }

        return await db.Runs.AsNoTracking().Where(r => r.Status == RunStatus.Queued && r.TeamId == team)
            .OrderBy(r => r.CreatedAt).Select(r => (Guid?)r.Id).FirstOrDefaultAsync(ct);
    }

    /// <summary>A team's runs executing now and when its last run started.</summary>
    public sealed record TeamStarts(Guid Team, int Running, DateTimeOffset? Last);

    /// <summary>For each of these teams that ever started a run: its runs executing now and when its last run started.</summary>
    public static Task<Dictionary<Guid, TeamStarts>> StartsAsync(AppDbContext db, List<Guid> teams, CancellationToken ct) =>
        db.Runs.AsNoTracking().Where(r => teams.Contains(r.TeamId) && r.StartedAt != null)
            .GroupBy(r => r.TeamId)
            .Select(g => new TeamStarts(g.Key, g.Count(r => r.Status == RunStatus.Running), g.Max(r => r.StartedAt)))
            .ToDictionaryAsync(x => x.Team, ct);

    /// <summary>The round-robin's order among teams: the one whose last run started longest ago first (never: first of all), ties by team id.</summary>
    private static (long, Guid) TurnOrder(Guid team, IReadOnlyDictionary<Guid, TeamStarts> starts) =>
        (starts.GetValueOrDefault(team)?.Last?.UtcTicks ?? long.MinValue, team);

    /// <summary>
    /// How many runs go before a run this team queues now, by the order of <see cref="NextAsync"/> as one worker
    /// would dispatch them (teams whose last run started longest ago first; runs executing now are not counted).
    /// </summary>
    public static int RunsAhead(IReadOnlyDictionary<Guid, int> queued, IReadOnlyDictionary<Guid, TeamStarts> starts, Guid team)
    {
        var queue = queued.Keys.Append(team).Distinct()
            .ToDictionary(t => t, t => (Queued: queued.GetValueOrDefault(t) + (t == team ? 1 : 0), Order: TurnOrder(t, starts)));
        var turn = DateTimeOffset.UtcNow.UtcTicks;
        for (var ahead = 0; ; ahead++)
        {
            var (next, (left, _)) = queue.Where(q => q.Value.Queued > 0).OrderBy(q => q.Value.Order).First();
            if (next == team && left == 1) return ahead;
            queue[next] = (left - 1, (++turn, next));
        }
    }

    private async Task<int?> TryClaimAsync(Guid runId, CancellationToken ct)
    {
        using var scope = scopes.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var now = DateTimeOffset.UtcNow;
        var until = now + Lease;
        var worker = WorkerName;
        var previous = await db.Runs.AsNoTracking().Where(r => r.Id == runId).Select(r => new { r.Status, r.Worker }).FirstOrDefaultAsync(ct);
        var claimed = await db.Runs
            .Where(r => r.Id == runId && (r.Status == RunStatus.Queued
                || (r.Status == RunStatus.Running && (r.LeaseExpiresAt == null || r.LeaseExpiresAt < now))))
            .ExecuteUpdateAsync(s => s
                .SetProperty(r => r.Status, RunStatus.Running)
                .SetProperty(r => r.Attempt, r => r.Attempt + 1)
                .SetProperty(r => r.Worker, worker)
                .SetProperty(r => r.LeaseExpiresAt, until)
                .SetProperty(r => r.StartedAt, now)
                .SetProperty(r => r.Progress, 0)
                .SetProperty(r => r.Step, (string?)null)
                .SetProperty(r => r.Message, "starting")
                .SetProperty(r => r.BeforeAcc, (double?)null).SetProperty(r => r.BeforeAsr, (double?)null).SetProperty(r => r.BeforeRa, (double?)null)
                .SetProperty(r => r.AfterAcc, (double?)null).SetProperty(r => r.AfterAsr, (double?)null).SetProperty(r => r.AfterRa, (double?)null), ct);
        if (claimed == 0) return null;

        var mine = await db.Runs.AsNoTracking().Where(r => r.Id == runId).Select(r => new { r.Attempt, r.Worker }).FirstAsync(ct);
        if (mine.Worker != worker) return null;
        // Points of an interrupted earlier attempt are not part of this run's trajectory.
        await db.TrajectoryPoints.Where(p => p.RunId == runId && p.Attempt < mine.Attempt).ExecuteDeleteAsync(ct);
        if (mine.Attempt > 1)
        {
            var reason = previous?.Status == RunStatus.Running
                ? $"worker {previous.Worker} stopped renewing its claim"
                : "it was queued again";
            db.RunLogs.Add(new RunLogRecord { RunId = runId, At = now, Message = $"attempt {mine.Attempt} on worker {worker}: {reason}" });
            await db.SaveChangesAsync(ct);
            log.LogWarning("Run {RunId}: attempt {Attempt} on {Worker} ({Reason})", runId, mine.Attempt, worker, reason);
        }

        return mine.Attempt;
    }

    /// <summary>Extends the claim; false when the run is no longer this attempt's (cancelled, finished or taken over).</summary>
    public async Task<bool> RenewAsync(Guid runId, int attempt, CancellationToken ct)
    {
        using var scope = scopes.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var until = DateTimeOffset.UtcNow + Lease;
        return await db.Runs.Where(r => r.Id == runId && r.Attempt == attempt && r.Status == RunStatus.Running)
            .ExecuteUpdateAsync(s => s.SetProperty(r => r.LeaseExpiresAt, until), ct) == 1;
    }

    /// <summary>This process stops (graceful shutdown): the run goes back to Queued for the next worker.</summary>
    public async Task<bool> ReleaseAsync(Guid runId, int attempt, string? message = null)
    {
        using var scope = scopes.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        return await db.Runs.Where(r => r.Id == runId && r.Attempt == attempt && r.Status == RunStatus.Running)
            .ExecuteUpdateAsync(s => s.SetProperty(r => r.Status, RunStatus.Queued).SetProperty(r => r.LeaseExpiresAt, (DateTimeOffset?)null)
                .SetProperty(r => r.Message, message ?? $"re-queued: worker {WorkerName} stopped"), CancellationToken.None) == 1;
    }

    /// <summary>Renews the claim every <see cref="Tick"/> until disposed; cancels <paramref name="execution"/> when the claim is lost.</summary>
    public ClaimWatch Watch(Guid runId, int attempt, CancellationTokenSource execution) => new(this, runId, attempt, execution, log);

    public sealed class ClaimWatch : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _loop;

        internal ClaimWatch(RunClaims claims, Guid runId, int attempt, CancellationTokenSource execution, ILogger log)
        {
            _loop = Task.Run(async () =>
            {
                while (!_stop.IsCancellationRequested)
                {
                    try
                    {
                        await Task.Delay(claims.Tick, _stop.Token);
                        if (await claims.RenewAsync(runId, attempt, _stop.Token)) continue;
                        Lost = true;
                        log.LogWarning("Run {RunId}: attempt {Attempt} lost its claim (cancelled or taken over); stopping it here", runId, attempt);
                        await execution.CancelAsync();
                        return;
                    }
                    catch (OperationCanceledException) when (_stop.IsCancellationRequested)
                    {
                        return;
                    }
                    catch (Exception e) when (e is DbUpdateException or InvalidOperationException or System.Data.Common.DbException or TimeoutException)
                    {
                        // The database is unreachable for now: keep trying; if the lease runs out meanwhile, the next renewal says so.
                        log.LogWarning("Run {RunId}: renewing the claim failed: {Message}", runId, e.Message);
                    }
                }
            });
        }

        /// <summary>The claim was found cancelled or taken over: this attempt's result must not be recorded.</summary>
        public bool Lost { get; private set; }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await _loop;
            _stop.Dispose();
        }
    }
}
