using WebDefense.Core.Data;
using WebDefense.Core.Defenses.Framework;

namespace WebDefense.Core.Defenses.Blocks;

/// <summary>
/// The defender's clean data split into a training part and a validation slice (stratified hold-out). When the
/// defender has backdoor samples the slice also holds triggered images (the triggered copies of the same rows
/// when paired, otherwise as many random uploaded ones), so the trajectory can show validation ASR.
/// </summary>
public static class ValidationSlices
{
    public static (ImageDataset Train, ValidationSet Validation) Holdout(DefenseContext context, double valFraction)
    {
        var labels = context.CleanData.Labels.data<long>().ToArray();
        var (trainRows, valRows) = DataSplits.Holdout(labels, valFraction, context.Random);
        if (trainRows.Length == 0 || valRows.Length == 0)
        {
            throw new DefenseInputException($"the clean data ({labels.Length} images) is too small to hold out a validation slice; give at least two images per class");
        }

        var backdoor = context.Backdoor;
        ImageDataset? triggered = null;
        if (backdoor is not null)
        {
            var rows = backdoor.PairedWithClean ? valRows : Enumerable.Range(0, backdoor.Images.Count).Select(i => (long)i).ToArray();
            if (!backdoor.PairedWithClean)
            {
                context.Random.Shuffle(rows);
                rows = rows.Take(Math.Min(valRows.Length, rows.Length)).ToArray();
            }

            triggered = backdoor.Images.Subset(rows);
        }

        return (context.CleanData.Subset(trainRows), new ValidationSet(context.CleanData.Subset(valRows), triggered, context.TargetLabel));
    }
}
