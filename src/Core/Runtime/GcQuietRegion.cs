using System.Runtime;

namespace WebDefense.Core.Runtime;

/// <summary>
/// Keeps garbage collections away from native torch calls.
/// <para>
/// TorchSharp 0.107 passes the handle of a temporary <c>Scalar</c> (made by an implicit conversion, e.g. inside
/// BatchNorm's <c>num_batches_tracked.add_(1)</c> or SGD's <c>add_(grad, alpha: -lr)</c>) to native code without
/// keeping the object alive. A GC started by another thread during that call can finalize the Scalar and free it
/// while libtorch reads it: we saw "Unknown scalar type" from <c>at::native::add_</c> after ~2,500 training steps.
/// </para>
/// <para>
/// Every batch of torch work enters this region. It keeps the process in a no-GC region
/// (<see cref="GC.TryStartNoGCRegion(long)"/>) with a large allocation budget, and re-arms it only on entry, i.e.
/// at a batch boundary of the thread doing torch work, once half the budget has been allocated. Collections then
/// happen at those safe points instead of during native calls, and rarely (a fresh region costs one blocking GC;
/// arming it for every batch made training several times slower). Holders are serialised by a lock because the
/// region is process-wide. If the runtime refuses or ends the region early, work continues unprotected.
/// <see cref="Release"/> leaves the no-GC mode when a job ends.
/// </para>
/// </summary>
public readonly struct GcQuietRegion : IDisposable
{
    private const long Budget = 128L << 20;
    private static readonly Lock Gate = new();
    private static long _armedAtAllocated = long.MinValue;
    private readonly bool _entered;

    private GcQuietRegion(bool entered) => _entered = entered;

    /// <summary>Enters the region (waiting while another thread holds it), re-arming it when needed.</summary>
    public static GcQuietRegion Enter()
    {
        Gate.Enter();
        var active = GCSettings.LatencyMode == GCLatencyMode.NoGCRegion;
        if (!active || GC.GetTotalAllocatedBytes() - _armedAtAllocated > Budget / 2)
        {
            EndIfActive();
            try
            {
                if (GC.TryStartNoGCRegion(Budget))
                {
                    _armedAtAllocated = GC.GetTotalAllocatedBytes();
                }
            }
            catch (Exception ex) when (ex is InvalidOperationException or ArgumentOutOfRangeException)
            {
                // Not granted: run unprotected rather than fail the work.
            }
        }

        return new GcQuietRegion(true);
    }

    /// <summary>Leaves no-GC mode (end of a job), so the process collects normally while idle.</summary>
    public static void Release()
    {
        lock (Gate)
        {
            EndIfActive();
        }
    }

    public void Dispose()
    {
        if (_entered)
        {
            Gate.Exit();
        }
    }

    private static void EndIfActive()
    {
        try
        {
            if (GCSettings.LatencyMode == GCLatencyMode.NoGCRegion)
            {
                GC.EndNoGCRegion();
            }
        }
        catch (InvalidOperationException)
        {
            // The runtime already ended it (budget exceeded).
        }
    }
}
