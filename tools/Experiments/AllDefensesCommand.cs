using System.Globalization;
using System.Text;
using WebDefense.Core.Defenses;
using WebDefense.Core.Training;

namespace WebDefense.Experiments;

/// <summary>
/// Issue 6's evidence: every defense of the catalog with its default parameters on the same Fashion-MNIST SmallCnn
/// cases (BadNets, Blended, SIG; target 0) over several seeds, each with the same defender budget of clean samples
/// per class; writes a mean ± std table and an ACC-vs-ASR scatter (SVG).
/// </summary>
internal static class AllDefensesCommand
{
    public static readonly (string Name, AttackSpec Attack)[] Attacks = [.. BackdooredModels.Attacks, ("sig", AttackSpec.Sig(0.1))];

    public static void Run(ExperimentOptions options)
    {
        var seeds = options.Int("seeds", 5);
        var epochs = options.Int("epochs", 8);
        var lr = options.Number("lr", 0.05);
        var perClass = options.Int("per-class", 100);
        var cache = options.Text("cache", "artifacts/experiments");
        var output = options.Text("out", "docs/results/all-defenses.md");
        var only = options.Text("defenses", "").Split(',', StringSplitOptions.RemoveEmptyEntries);
        var defenses = DefenseCatalog.All.Where(d => only.Length == 0 || only.Contains(d.Name))
            .Select(d => new StudyDefense(d, perClass, d.Name)).ToList();
        var seedList = options.Text("seed-list", "").Split(',', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToList();
        var attackNames = options.Text("attacks", "").Split(',', StringSplitOptions.RemoveEmptyEntries);
        var attacks = Attacks.Where(a => attackNames.Length == 0 || attackNames.Contains(a.Name)).ToList();
        var rows = DefenseStudy.Run(attacks, defenses, seeds, epochs, lr, cache, Path.Combine(cache, $"all-defenses-e{epochs}-pc{perClass}.jsonl"), seedList);
        Directory.CreateDirectory(Path.GetDirectoryName(output)!);
        var svg = Path.ChangeExtension(output, null) + "-scatter.svg";
        File.WriteAllText(svg, DefenseStudy.Scatter(rows));
        File.WriteAllText(output, Report(rows, seeds, epochs, lr, perClass, Path.GetFileName(svg), only));
        Console.WriteLine($"wrote {output} and {svg}");
    }

    private static string Report(List<StudyRow> rows, int seeds, int epochs, double lr, int perClass, string svg, string[] only)
    {
        var inv = CultureInfo.InvariantCulture;
        var s = new StringBuilder();
        s.AppendLine("# All defenses on Fashion-MNIST (SmallCnn): BadNets, Blended, SIG");
        s.AppendLine();
        s.AppendLine(inv, $"Generated {DateTime.UtcNow:yyyy-MM-dd} by:");
        s.AppendLine();
        s.AppendLine("```bash");
        s.AppendLine($"dotnet run --project tools/Experiments -c Release -- all-defenses --seeds {seeds} --epochs {epochs} --lr {lr.ToString(inv)} --per-class {perClass}" +
                          (only.Length > 0 ? $" --defenses {string.Join(',', only)}" : ""));
        s.AppendLine("```");
        s.AppendLine();
        s.AppendLine("(Run here as two processes sharing the resumable log, `--threads 1 --seed-list 0,2,4` and `--threads 1 --seed-list 1,3`, then the command above to write the report.)");
        s.AppendLine();
        s.AppendLine(inv, $"Machine: {Environment.ProcessorCount} CPU cores, no GPU; TorchSharp 0.107 / libtorch 2.10 CPU.");
        s.AppendLine();
        s.AppendLine("## Setup");
        s.AppendLine();
        s.AppendLine($"- Victims: SmallCnn (`smallcnn`) trained by our attack lab on the 60,000 Fashion-MNIST training images, target class 0, " +
                          $"SGD lr {lr.ToString(inv)} momentum 0.9 wd 5e-4, batch 128, cosine over {epochs} epochs, RandomCrop(28, pad 2), seed 0. " +
                          "BadNets: 3×3 white patch bottom-right, 10% dirty-label. Blended: seeded uniform-noise image, α = 0.2, 10% dirty-label. " +
                          "SIG: horizontal sinusoid Δ = 40, f = 6, clean-label, poisoning ratio 0.1 of the training set (= every class-0 training image).");
        s.AppendLine("- Test sets: the 10,000 Fashion-MNIST test images (ACC) and the 9,000 non-target test images with the trigger (ASR, RA).");
        s.AppendLine($"- Defender data: {perClass} clean training images per class, drawn anew for each seed (seed s draws with 1000 + s); defenses that need " +
                          "backdoor samples (Grad-Prune) also get their triggered copies with TRUE labels. CLP is data-free and uses the clean data only for validation.");
        s.AppendLine("- Parameters: each defense's defaults as `GET /api/defenses` shows them; every selection (pruning level, epoch, threshold) uses a validation slice " +
                     "of the defender's data, never the test sets. Metrics are percentages; ± is the sample standard deviation over seeds; the x column is the " +
                     "chosen operating point (units pruned, or the chosen epoch for fine-tuning defenses).");
        s.AppendLine();
        s.AppendLine("## Results (mean ± std over seeds)");
        s.AppendLine();
        DefenseStudy.SummaryTable(s, rows, "chosen x");
        s.AppendLine();
        s.AppendLine(inv, $"![ACC vs ASR after each defense]({svg})");
        s.AppendLine();
        s.AppendLine("## Per seed");
        s.AppendLine();
        DefenseStudy.PerSeedTable(s, rows);
        return s.ToString();
    }
}
