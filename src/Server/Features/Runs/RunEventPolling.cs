using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Runs;
using WebDefense.Server.Data;
using WebDefense.Server.Jobs;

namespace WebDefense.Server.Features.Runs;

/// <summary>
/// A run's live events read from the database, for the PostgreSQL setup where the run executes in a worker process
/// elsewhere: the same event types and payloads as the in-process stream (snapshot, then status, progress, point,
/// log, heartbeat), polled once a second. Before/after metrics arrive with the final status (read the run then).
/// </summary>
internal static class RunEventPolling
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Heartbeat = TimeSpan.FromSeconds(15);

    public static async IAsyncEnumerable<SseItem<string>> StreamAsync(RunRecord run, AppDbContext db, System.Security.Claims.ClaimsPrincipal caller, [EnumeratorCancellation] CancellationToken ct)
    {
        yield return Item("snapshot", RunResponse.From(run, caller));
        if (run.IsFinished) yield break;

        var attempt = run.Attempt;
        var nextPoint = await db.TrajectoryPoints.CountAsync(p => p.RunId == run.Id && p.Attempt == attempt, ct);
        var lastLog = await db.RunLogs.Where(l => l.RunId == run.Id).MaxAsync(l => (long?)l.Id, ct) ?? 0;
        var (status, progress, step, message) = (run.Status, run.Progress, run.Step, run.Message);
        var quietSince = DateTime.UtcNow;
        while (await WaitAsync(ct))
        {
            var current = await db.Runs.AsNoTracking().FirstOrDefaultAsync(r => r.Id == run.Id, ct);
            if (current is null) yield break;
            var sent = false;
            if (current.Attempt != attempt) (attempt, nextPoint) = (current.Attempt, 0);
            var points = await db.TrajectoryPoints.AsNoTracking()
                .Where(p => p.RunId == run.Id && p.Attempt == attempt && p.Index >= nextPoint).OrderBy(p => p.Index).ToListAsync(ct);
            foreach (var point in points)
            {
                nextPoint = point.Index + 1;
                sent = true;
                yield return Event(new PointEvent(JsonSerializer.Deserialize<TrajectoryPoint>(point.Json, RunSpec.Json)!));
            }

            var logs = await db.RunLogs.AsNoTracking().Where(l => l.RunId == run.Id && l.Id > lastLog).OrderBy(l => l.Id).ToListAsync(ct);
            foreach (var line in logs)
            {
                lastLog = line.Id;
                sent = true;
                yield return Event(new LogEvent(line.At, line.Message));
            }

            if ((current.Progress, current.Step, current.Message) != (progress, step, message))
            {
                (progress, step, message) = (current.Progress, current.Step, current.Message);
                sent = true;
                yield return Event(new ProgressEvent(progress, step ?? "", message ?? ""));
            }

            if (current.Status != status)
            {
                status = current.Status;
                yield return Item("status", new { status = status.ToString(), error = current.Error });
                if (current.IsFinished) yield break;
                sent = true;
            }

            if (sent)
            {
                quietSince = DateTime.UtcNow;
            }
            else if (DateTime.UtcNow - quietSince >= Heartbeat)
            {
                quietSince = DateTime.UtcNow;
                yield return new SseItem<string>("{}", "heartbeat");
            }
        }
    }

    private static async Task<bool> WaitAsync(CancellationToken ct)
    {
        try
        {
            await Task.Delay(Interval, ct);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private static SseItem<string> Event(RunEvent e) => new(JsonSerializer.Serialize(e, RunUpdates.Json), TypeOf(e));

    private static SseItem<string> Item(string type, object payload) => new(JsonSerializer.Serialize(payload, RunUpdates.Json), type);

    private static string TypeOf(RunEvent e) => e switch
    {
        PointEvent => "point",
        LogEvent => "log",
        _ => "progress",
    };
}
