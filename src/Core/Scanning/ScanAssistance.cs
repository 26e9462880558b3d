using WebDefense.Core.Defenses.Framework;

namespace WebDefense.Core.Scanning;

/// <summary>
/// The parameters every post-training defense shares for runs without backdoor samples: whether to scan first and use the
/// reconstructed trigger, and the ASR-aware selection rule that validation ASR (real or estimated) enables.
/// </summary>
public static class ScanAssistance
{
    public const string ScanParameter = "scan";
    public const string MaxValAsrParameter = "max_val_asr";

    public static ParameterSpec Scan { get; } = ParameterSpec.Flag(ScanParameter, true,
        "Without backdoor samples (no trigger, no triggered images): scan the model for a backdoor first (Neural Cleanse) and, when one is suspected, stamp the clean data with the reconstructed trigger, so the selection sees an estimated validation ASR and the outcome is estimated on held-out clean images.");

    public static ParameterSpec MaxValAsr { get; } = ParameterSpec.Number(MaxValAsrParameter, 0.10, 0.0, 1.0,
        "With a validation ASR (from a trigger, triggered images or the scan): keep the smallest pruning level whose validation ASR is at most this while validation ACC stays within the bound (none: the lowest validation ASR within the bound), or the best-ACC epoch among those at most this (none: the best-ACC epoch). 1 selects on ACC alone.");

    /// <summary>The ASR bound of the selection, or null when the parameters turn ASR-aware selection off (max_val_asr = 1).</summary>
    public static double? SelectionBound(DefenseParameters parameters) =>
        parameters.Values.ContainsKey(MaxValAsrParameter) && parameters.Number(MaxValAsrParameter) < 1 ? parameters.Number(MaxValAsrParameter) : null;

    public static bool Enabled(DefenseParameters parameters) =>
        parameters.Values.ContainsKey(ScanParameter) && parameters.Flag(ScanParameter);
}
