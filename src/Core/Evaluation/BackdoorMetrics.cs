namespace WebDefense.Core.Evaluation;

/// <summary>
/// BackdoorBench's metrics (reference-algorithms §1), as fractions in [0,1]:
/// ACC on the clean test set; ASR and RA on the backdoor test set with target-class images removed
/// (ASR: predicted as the target; RA: predicted as the true label). ASR/RA are null without a backdoor set.
/// </summary>
public sealed record BackdoorMetrics(double Acc, double? Asr, double? Ra, int CleanCount, int BackdoorCount)
{
    /// <summary>
    /// Defense effectiveness rating: [max(0, ΔASR) − max(0, ΔACC) + 1] / 2 with ΔACC = ACC_before − ACC_after
    /// and ΔASR = ASR_before − ASR_after. Null when either side has no ASR.
    /// </summary>
    public static double? Der(BackdoorMetrics before, BackdoorMetrics after)
    {
        if (before.Asr is not { } asrBefore || after.Asr is not { } asrAfter)
        {
            return null;
        }

        var deltaAcc = before.Acc - after.Acc;
        var deltaAsr = asrBefore - asrAfter;
        return (Math.Max(0, deltaAsr) - Math.Max(0, deltaAcc) + 1) / 2;
    }
}
