using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using WebDefense.Core.Data;
using WebDefense.Core.Evaluation;
using WebDefense.Core.Models;

namespace WebDefense.Experiments;

/// <summary>
/// Every checkpoint under shared/data/models loaded as it is (nothing declared), as an upload would: format, what was
/// unwrapped and ignored, the architecture found, or the message. Then ACC/ASR by our evaluator for the cases
/// tools/fixtures/byom_reference.py measured with PyTorch on the same images (its cases.json), side by side.
/// </summary>
internal static class BringYourOwnCommand
{
    public static void Run(ExperimentOptions options)
    {
        var models = options.Text("models", Path.Combine("..", "shared", "data", "models"));
        var reference = options.Text("reference", Path.Combine("artifacts", "byom"));
        var output = options.Text("out", "");
        var files = Directory.EnumerateFiles(models, "*", SearchOption.AllDirectories)
            .Where(f => f.EndsWith(".pth", StringComparison.Ordinal) || f.EndsWith(".tar", StringComparison.Ordinal) || f.EndsWith(".th", StringComparison.Ordinal))
            .Select(f => Path.GetRelativePath(models, f).Replace('\\', '/')).Order(StringComparer.Ordinal).ToList();

        var upload = new StringBuilder();
        upload.AppendLine("| checkpoint | format | unwrapped / stripped | ignored | found | or the message |");
        upload.AppendLine("|---|---|---|---|---|---|");
        var accepted = 0;
        foreach (var file in files)
        {
            try
            {
                using var loaded = ModelLoader.Load(Path.Combine(models, file), new PartialDeclaration());
                var c = loaded.Contents;
                var input = loaded.Classifier.Input;
                upload.AppendLine($"| `{file}` | {loaded.Format} | {c.Container ?? "—"}{(c.StrippedPrefixes.Count > 0 ? $" / `{string.Join("", c.StrippedPrefixes)}`" : "")} | " +
                                  $"{(c.Ignored.Count == 0 ? "—" : string.Join(", ", c.Ignored))} | **{loaded.Classifier.Architecture}**, {loaded.Classifier.NumClasses} classes, " +
                                  $"{input.Channels}×{input.Height}×{input.Width} | |");
                accepted++;
            }
            catch (ModelFileException e)
            {
                upload.AppendLine($"| `{file}` | | | | | {e.Message.Replace("|", "\\|", StringComparison.Ordinal)} |");
            }
        }

        upload.AppendLine();
        upload.AppendLine($"{accepted} of {files.Count} checkpoints load with nothing declared.");
        Console.WriteLine(upload);

        var metrics = new StringBuilder();
        var casesPath = Path.Combine(reference, "cases.json");
        if (File.Exists(casesPath))
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(casesPath));
            metrics.AppendLine($"| checkpoint | normalisation | backdoor test (target) | ACC ours | ACC PyTorch {doc.RootElement.GetProperty("torch").GetString()} | ASR ours | ASR PyTorch | seconds |");
            metrics.AppendLine("|---|---|---|---|---|---|---|---|");
            var sets = new Dictionary<string, LabelledDataset>();
            LabelledDataset Set(string name) => sets.TryGetValue(name, out var s) ? s : sets[name] = DatasetReader.Read(Path.Combine(reference, name));
            foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
            {
                var file = c.GetProperty("file").GetString()!;
                var mean = c.GetProperty("mean").EnumerateArray().Select(v => v.GetSingle()).ToArray();
                var std = c.GetProperty("std").EnumerateArray().Select(v => v.GetSingle()).ToArray();
                var backdoor = c.GetProperty("backdoor").ValueKind == JsonValueKind.String ? c.GetProperty("backdoor").GetString() : null;
                var target = c.GetProperty("target").ValueKind == JsonValueKind.Number ? c.GetProperty("target").GetInt32() : 0;
                var watch = Stopwatch.StartNew();
                using var loaded = ModelLoader.Load(Path.Combine(models, file), new PartialDeclaration(Mean: mean, Std: std));
                var result = Evaluator.Evaluate(loaded.Classifier, Set(c.GetProperty("clean").GetString()!).Data, backdoor is null ? null : Set(backdoor).Data, target);
                var pyAsr = c.GetProperty("asr").ValueKind == JsonValueKind.Number ? c.GetProperty("asr").GetDouble() : (double?)null;
                metrics.AppendLine($"| `{file}` | {c.GetProperty("normalisation").GetString()} | {(backdoor is null ? "—" : $"{backdoor} ({target})")} | " +
                                   $"{Pct(result.Acc)} | {Pct(c.GetProperty("acc").GetDouble())} | {Pct(result.Asr)} | {Pct(pyAsr)} | " +
                                   $"{watch.Elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)} |");
            }

            foreach (var s in sets.Values)
            {
                s.Dispose();
            }

            Console.WriteLine(metrics);
        }
        else
        {
            Console.WriteLine($"no {casesPath}: run /usr/bin/python3 tools/fixtures/byom_reference.py first for the ACC/ASR comparison");
        }

        if (output.Length > 0)
        {
            File.WriteAllText(output, upload + "\n" + metrics);
            Console.WriteLine($"wrote {output}");
        }
    }

    private static string Pct(double? v) => v is { } x ? (100 * x).ToString("0.00", CultureInfo.InvariantCulture) : "—";
}
