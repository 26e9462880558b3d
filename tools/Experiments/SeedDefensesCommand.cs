using System.Globalization;
using System.Text;
using WebDefense.Core.Data;
using WebDefense.Core.Data.Triggers;
using WebDefense.Core.Defenses;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Evaluation;

namespace WebDefense.Experiments;

/// <summary>
/// Issue 3's evidence: on Fashion-MNIST with the SmallCnn, BadNets and Blended models (target 0, 10% poisoning,
/// made by our attack lab) are defended by Grad-Prune (10 clean samples per class, their triggered copies as
/// backdoor samples) and RNP (50 clean samples per class) over several seeds; each seed draws a different
/// defender set from the clean training images (as the Grad-Prune paper's five trials do). Selection uses
/// validation slices of the defender's data only; the test sets are used for the before/after numbers.
/// </summary>
internal static class SeedDefensesCommand
{
    public static void Run(ExperimentOptions options)
    {
        var seeds = options.Int("seeds", 5);
        var epochs = options.Int("epochs", 8);
        var lr = options.Number("lr", 0.05);
        var cache = options.Text("cache", "artifacts/experiments");
        var output = options.Text("out", "docs/results/seed-defenses.md");
        StudyDefense[] defenses =
        [
            new(new GradPruneDefense(), 10, "grad-prune (spc 10)", new Dictionary<string, object> { ["samples_per_class"] = 10 }),
            new(new GradPruneDefense(), 100, "grad-prune (spc 100)", new Dictionary<string, object> { ["samples_per_class"] = 100 }),
            // RNP on clean data alone, as its paper (no backdoor scan first, which the product runs for a user without a trigger).
            new(new RnpDefense(), 50, "rnp (50/class)", new Dictionary<string, object> { ["scan"] = false }),
        ];
        var rows = DefenseStudy.Run(BackdooredModels.Attacks, defenses, seeds, epochs, lr, cache, Path.Combine(cache, $"seed-defenses-e{epochs}.jsonl"));
        Directory.CreateDirectory(Path.GetDirectoryName(output)!);
        File.WriteAllText(output, Report(rows, seeds, epochs, lr));
        Console.WriteLine($"wrote {output}");
    }

    private static string Report(List<StudyRow> rows, int seeds, int epochs, double lr)
    {
        var s = new StringBuilder();
        s.AppendLine("# Seed defenses on Fashion-MNIST: Grad-Prune and RNP");
        s.AppendLine();
        s.AppendLine($"Generated {DateTime.UtcNow:yyyy-MM-dd} by:");
        s.AppendLine();
        s.AppendLine("```bash");
        s.AppendLine($"dotnet run --project tools/Experiments -c Release -- seed-defenses --seeds {seeds} --epochs {epochs} --lr {lr.ToString(CultureInfo.InvariantCulture)}");
        s.AppendLine("```");
        s.AppendLine();
        s.AppendLine($"Machine: {Environment.ProcessorCount} CPU cores, no GPU; TorchSharp 0.107 / libtorch 2.10 CPU.");
        s.AppendLine();
        s.AppendLine("## Setup");
        s.AppendLine();
        s.AppendLine($"- Victims: SmallCnn (`smallcnn`, 24k parameters) trained by our attack lab on the 60,000 Fashion-MNIST training images, " +
                     $"10% dirty-label poisoning towards class 0, SGD lr {lr.ToString(CultureInfo.InvariantCulture)} momentum 0.9 wd 5e-4, batch 128, cosine over {epochs} epochs, RandomCrop(28, pad 2), seed 0.");
        s.AppendLine("  BadNets: 3×3 white patch in the bottom-right corner. Blended: seeded uniform-noise image, α = 0.2 (BackdoorBench's Hello Kitty image is not available here).");
        s.AppendLine("- Test sets: the 10,000 Fashion-MNIST test images (ACC) and the 9,000 non-target test images with the trigger (ASR, RA).");
        s.AppendLine("- Defender data, drawn anew for each seed from the clean training images (class-balanced): Grad-Prune 10 per class (9 train + 1 validation per class) " +
                     "and 100 per class (90 + 10), with their triggered copies (true labels) as backdoor samples; RNP 50 per class (10% held out for validation).");
        s.AppendLine("- Defense parameters: the defaults shown by `GET /api/defenses` (Grad-Prune α = 0.1, P_p = P_t = 10, lr 0.001, persistent mask on; " +
                     "RNP clean threshold 0.20, unlearning lr 0.01, recovery lr 0.2 × 20 epochs, α = 0.2, channels pruned one by one in mask order, " +
                     "level chosen as the largest whose validation ACC, and that of every smaller level, stays within 3 points).");
        s.AppendLine("- Selection never sees the test sets. Metrics are percentages; ± is the sample standard deviation over seeds.");
        s.AppendLine();
        s.AppendLine("## Results (mean ± std over seeds)");
        s.AppendLine();
        DefenseStudy.SummaryTable(s, rows);
        s.AppendLine();
        s.AppendLine("## Per seed");
        s.AppendLine();
        DefenseStudy.PerSeedTable(s, rows);
        return s.ToString();
    }
}
