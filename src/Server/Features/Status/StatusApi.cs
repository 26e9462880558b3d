using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using WebDefense.Server.Auth;
using WebDefense.Server.Data;
using Hangfire;
using WebDefense.Server.Hosting;
using WebDefense.Server.Jobs;

namespace WebDefense.Server.Features.Status;

/// <summary>
/// Queue and worker status. Counts over all teams are numbers only (no ids, no names); the team's own counts are
/// separate. Runs are dispatched round-robin across teams (<see cref="RunClaims.NextAsync"/>), so what a new run
/// of this team waits for is its own team's queued runs and the other teams' turns in between:
/// <see cref="QueueStatusResponse.RunsAhead"/> (<see cref="RunClaims.RunsAhead"/>). The estimated wait is that
/// divided among the workers, times the mean wall time of the last 20 finished runs.
/// </summary>
public sealed record QueueStatusResponse(
    string Device, int Workers, bool EngineAvailable, int Queued, int Running, int TeamQueued, int TeamRunning, int RunsAhead, double? EstimatedWaitSeconds);

public static class StatusApi
{
    public static IEndpointRouteBuilder MapStatusApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/status", GetAsync).WithTags("Status").RequireAuthorization()
            .WithSummary("Queue and worker status: runs queued and running (all teams and yours), workers, device, and for a new run of yours the runs ahead of it and the estimated wait.");
        return app;
    }

    private static async Task<Ok<QueueStatusResponse>> GetAsync(
        HttpContext http, AppDbContext db, IOptions<WebDefenseOptions> options, EngineStatus engine, RunDevice device, JobStorage storage, CancellationToken ct)
    {
        var team = http.User.TeamId();
        var active = await db.Runs.AsNoTracking()
            .Where(r => r.Status == RunStatus.Queued || r.Status == RunStatus.Running)
            .GroupBy(r => new { r.Status, r.TeamId })
            .Select(g => new { g.Key.Status, g.Key.TeamId, Count = g.Count() })
            .ToListAsync(ct);
        int Count(RunStatus s, bool? mine = null) => active.Where(a => a.Status == s && (mine is null || (a.TeamId == team) == mine)).Sum(a => a.Count);
        var mineQueued = Count(RunStatus.Queued, true);
        var queued = active.Where(a => a.Status == RunStatus.Queued).ToDictionary(a => a.TeamId, a => a.Count);
        var ahead = RunClaims.RunsAhead(queued, await RunClaims.StartsAsync(db, [.. queued.Keys, team], ct), team);

        var recent = await db.Runs.AsNoTracking().Where(r => r.WallSeconds != null)
            .OrderByDescending(r => r.CreatedAt).Take(20).Select(r => r.WallSeconds!.Value).ToListAsync(ct);
        // Workers are Hangfire servers listening on a run queue, in this process or on other hosts.
        var servers = storage.GetMonitoringApi().Servers().Where(s => s.Queues.Any(q => q.StartsWith("runs", StringComparison.Ordinal))).ToList();
        var workers = servers.Count > 0 ? servers.Sum(s => s.WorkersCount) : options.Value.WorkerCount;
        double? wait = recent.Count == 0 ? null : recent.Average() * ((double)ahead / Math.Max(1, workers) + (Count(RunStatus.Running) >= workers ? 0.5 : 0));
        return TypedResults.Ok(new QueueStatusResponse(device.Resolved, workers, engine.Available,
            Count(RunStatus.Queued), Count(RunStatus.Running), mineQueued, Count(RunStatus.Running, true), ahead, wait));
    }
}
