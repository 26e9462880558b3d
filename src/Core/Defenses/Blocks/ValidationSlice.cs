using WebDefense.Core.Data;
using WebDefense.Core.Defenses.Framework;

namespace WebDefense.Core.Defenses.Blocks;

/// <summary>
/// The defender's validation slice for a set of clean rows: those clean images and, when the defender has backdoor
/// samples, as many triggered images (the triggered copies of the same rows when paired, a seeded random draw
/// otherwise). Selection rules use the clean part; the triggered part only adds validation ASR to the trajectory.
/// </summary>
public static class ValidationSlice
{
    public static ValidationSet Build(DefenseContext context, long[] cleanRows)
    {
        var backdoor = context.Backdoor;
        long[]? backdoorRows = null;
        if (backdoor is not null)
        {
            backdoorRows = backdoor.PairedWithClean ? cleanRows : Enumerable.Range(0, backdoor.Images.Count).Select(i => (long)i).ToArray();
            if (!backdoor.PairedWithClean)
            {
                context.Random.Shuffle(backdoorRows);
                backdoorRows = backdoorRows.Take(Math.Min(cleanRows.Length, backdoorRows.Length)).ToArray();
            }
        }

        return new ValidationSet(context.CleanData.Subset(cleanRows), backdoorRows is null ? null : backdoor!.Images.Subset(backdoorRows), context.TargetLabel);
    }

    /// <summary>Every clean row as validation (for defenses that train on nothing, e.g. CLP).</summary>
    public static ValidationSet All(DefenseContext context) =>
        Build(context, Enumerable.Range(0, context.CleanData.Count).Select(i => (long)i).ToArray());

    /// <summary>
    /// The clean data split by a stratified hold-out into a training part and the validation slice of the held-out rows.
    /// </summary>
    public static (ImageDataset Train, ValidationSet Validation) Holdout(DefenseContext context, double valFraction)
    {
        var (trainRows, valRows) = HoldoutRows(context, valFraction);
        return (context.CleanData.Subset(trainRows), Build(context, valRows));
    }

    /// <summary>The stratified hold-out's row indices into the clean data (training rows, validation rows).</summary>
    public static (long[] Train, long[] Validation) HoldoutRows(DefenseContext context, double valFraction)
    {
        var labels = context.CleanData.Labels.data<long>().ToArray();
        var (trainRows, valRows) = DataSplits.Holdout(labels, valFraction, context.Random);
        if (trainRows.Length == 0 || valRows.Length == 0)
        {
            throw new DefenseInputException($"the clean data ({labels.Length} images) is too small to hold out a validation slice; give at least two images per class");
        }

        return (trainRows, valRows);
    }
}
