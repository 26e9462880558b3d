namespace WebDefense.Core.Evaluation;

/// <summary>
/// What a post-training run did to the backdoor, in words a user can act on. <see cref="Outcome"/> is one of
/// <see cref="Removed"/>, <see cref="Reduced"/>, <see cref="StillPresent"/>, <see cref="NoneFound"/> or
/// <see cref="NotMeasured"/>; <see cref="Basis"/> says where the ASR numbers come from: <see cref="Measured"/> (the
/// backdoor test set) or <see cref="Estimated"/> (the scan's reconstructed trigger on held-out clean images).
/// </summary>
public sealed record BackdoorOutcome(string Outcome, string Basis, double? AsrBefore, double? AsrAfter, bool ModelChanged, string Summary)
{
    public const string Removed = "removed";
    public const string Reduced = "reduced";
    public const string StillPresent = "still-present";
    public const string NoneFound = "none-found";
    public const string NotMeasured = "not-measured";

    public const string Measured = "measured";
    public const string Estimated = "estimated";
    public const string None = "none";

    public static IReadOnlyList<string> Outcomes { get; } = [Removed, Reduced, StillPresent, NoneFound, NotMeasured];

    /// <summary>ASR at or below this counts as no backdoor (before: none found; after: removed).</summary>
    public const double RemovedAsr = 0.10;

    /// <summary>An ASR at most this share of the one before counts as reduced.</summary>
    public const double ReducedShare = 0.5;

    /// <summary>
    /// The rule: no ASR on either side → not measured; ASR before ≤ 10% → none found (nothing to remove); after ≤ 10% →
    /// removed; after ≤ half of before → reduced; otherwise still present. <paramref name="why"/> says why nothing could be
    /// measured (e.g. the scan's finding) when the numbers are missing.
    /// </summary>
    public static BackdoorOutcome Decide(double? asrBefore, double? asrAfter, string basis, bool modelChanged, string? why = null)
    {
        var unchanged = modelChanged ? string.Empty : " The defense left the model unchanged.";
        if (asrBefore is not { } before || asrAfter is not { } after)
        {
            return new BackdoorOutcome(NotMeasured, None, asrBefore, asrAfter, modelChanged,
                (why ?? "No backdoor test set and no reconstructed trigger: what happened to the backdoor is unknown.") + unchanged);
        }

        var source = basis == Estimated ? "estimated ASR (the scan's reconstructed trigger on held-out clean images)" : "ASR on the backdoor test set";
        var numbers = $"{source} {before:P1} → {after:P1}.";
        var (outcome, words) = before <= RemovedAsr ? (NoneFound, "No backdoor was found before the defense:")
            : after <= RemovedAsr ? (Removed, "Backdoor removed:")
            : after <= ReducedShare * before ? (Reduced, "Backdoor reduced but not removed:")
            : (StillPresent, "Backdoor still present:");
        return new BackdoorOutcome(outcome, basis, before, after, modelChanged, $"{words} {numbers}{unchanged}");
    }
}
