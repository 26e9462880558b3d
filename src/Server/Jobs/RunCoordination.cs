using System.Collections.Concurrent;
using System.Threading.Channels;
using Hangfire;

namespace WebDefense.Server.Jobs;

/// <summary>Cancellation sources of the runs executing in this process.</summary>
public sealed class RunCancellations
{
    private readonly ConcurrentDictionary<Guid, CancellationTokenSource> _running = new();

    public CancellationTokenSource Register(Guid runId, CancellationToken jobToken)
    {
        var cts = CancellationTokenSource.CreateLinkedTokenSource(jobToken);
        _running[runId] = cts;
        return cts;
    }

    public void Unregister(Guid runId) => _running.TryRemove(runId, out _);

    /// <summary>True when the run executes here and was told to stop.</summary>
    public bool Cancel(Guid runId)
    {
        if (!_running.TryGetValue(runId, out var cts)) return false;
        cts.Cancel();
        return true;
    }
}

/// <summary>A live update for SSE clients: an event type and its JSON.</summary>
public sealed record RunUpdate(string Type, string Json);

/// <summary>Fans run updates out to the live listeners of each run.</summary>
public sealed class RunUpdates
{
    /// <summary>Compact JSON (one SSE data line per update).</summary>
    public static System.Text.Json.JsonSerializerOptions Json { get; } = new(WebDefense.Core.Runs.RunSpec.Json) { WriteIndented = false };

    private readonly ConcurrentDictionary<Guid, ConcurrentDictionary<Channel<RunUpdate>, byte>> _listeners = new();

    public void Publish(Guid runId, RunUpdate update)
    {
        if (!_listeners.TryGetValue(runId, out var set)) return;
        foreach (var channel in set.Keys) channel.Writer.TryWrite(update);
    }

    public (ChannelReader<RunUpdate> Reader, IDisposable Subscription) Subscribe(Guid runId)
    {
        var channel = Channel.CreateBounded<RunUpdate>(new BoundedChannelOptions(1000) { FullMode = BoundedChannelFullMode.DropOldest });
        var set = _listeners.GetOrAdd(runId, _ => new());
        set[channel] = 0;
        return (channel.Reader, new Unsubscribe(() =>
        {
            set.TryRemove(channel, out _);
            channel.Writer.TryComplete();
        }));
    }

    private sealed class Unsubscribe(Action action) : IDisposable
    {
        public void Dispose() => action();
    }
}

/// <summary>Puts runs on the Hangfire queue of this process's device kind (runs-cpu or runs-cuda).</summary>
public sealed class RunQueue(IBackgroundJobClient jobs, RunDevice device)
{
    public void Enqueue(Guid runId) => jobs.Enqueue<RunJob>(device.Queue, job => job.ExecuteAsync(runId, CancellationToken.None));
}
