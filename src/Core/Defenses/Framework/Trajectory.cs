namespace WebDefense.Core.Defenses.Framework;

/// <summary>
/// One point of a defense's trajectory: x is the number of pruned units, the epoch or the stage iteration
/// (<see cref="XLabel"/> says which); the y values are measured on the defender's VALIDATION data, never on the test
/// sets. <see cref="Values"/> carries further named measures of a stage (e.g. a training-time defense's likely-clean set
/// size, or its detection precision/recall when the poisoning truth is known); null for the pruning defenses.
/// </summary>
public sealed record TrajectoryPoint(double X, string XLabel, double? ValAcc = null, double? ValAsr = null, double? ValRa = null, double? Loss = null, string? Note = null, string Phase = "prune",
    IReadOnlyDictionary<string, double>? Values = null);

/// <summary>The operating point a defense chose and the rule that chose it (in words, with the numbers).</summary>
public sealed record OperatingPoint(double X, string Rule, bool Oracle = false);

/// <summary>Receives progress as a defense runs. Implementations must be thread-safe and cheap.</summary>
public interface IDefenseObserver
{
    void StepStarted(int index, int count, string step);
    void Progress(double fractionOfStep, string message);
    void Point(TrajectoryPoint point);
    void Log(string message);
}

/// <summary>An observer that ignores everything.</summary>
public sealed class NullDefenseObserver : IDefenseObserver
{
    public static NullDefenseObserver Instance { get; } = new();
    public void StepStarted(int index, int count, string step) { }
    public void Progress(double fractionOfStep, string message) { }
    public void Point(TrajectoryPoint point) { }
    public void Log(string message) { }
}
