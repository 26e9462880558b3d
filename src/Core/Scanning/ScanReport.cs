using System.Text.Json;
using WebDefense.Core.Data;
using WebDefense.Core.Data.Triggers;
using WebDefense.Core.Models;
using static TorchSharp.torch;

namespace WebDefense.Core.Scanning;

/// <summary>One label of a <see cref="ScanReport"/>; <see cref="Trigger"/> (a "mask" trigger spec, JSON) only in the full report.</summary>
public sealed record LabelReport(int Label, double MaskNorm, double AnomalyIndex, bool Flagged, bool ReachedThreshold, double InversionAsr,
    double? HoldoutAsr, int Epochs, string? Trigger);

/// <summary>
/// A scan as the service stores and shows it: the verdict, the numbers behind it, and per label the mask norm, anomaly
/// index and the reconstructed trigger's ASR. The full report (scan.json) carries each label's trigger spec; the compact
/// one (a run's <c>scan</c> field) leaves them out.
/// </summary>
public sealed record ScanReport(bool Suspected, int? TargetLabel, IReadOnlyList<int> FlaggedLabels, double Median, double Mad, double Threshold,
    double MaxNormRatio, double? EstimatedAsr, int InversionImages, int HoldoutImages, double Seconds, string Summary, string? Trigger,
    IReadOnlyList<LabelReport> Labels)
{
    public const string FileName = "scan.json";

    public static ScanReport From(ScanResult scan, bool withTriggers) => new(scan.Suspected, scan.TargetLabel, scan.FlaggedLabels, scan.Median, scan.Mad,
        scan.Threshold, scan.MaxNormRatio, scan.EstimatedAsr, scan.InversionImages, scan.HoldoutImages, scan.Seconds, scan.Summary, scan.Trigger?.ToJson(),
        scan.Labels.Select(l => new LabelReport(l.Label, l.MaskNorm, l.AnomalyIndex, l.Flagged, l.ReachedThreshold, l.InversionAsr, l.HoldoutAsr, l.Epochs,
            withTriggers ? l.Trigger.ToJson() : null)).ToList());

    /// <summary>The file name of a label's image: "mask", "pattern" or "example" (a held-out clean image stamped with the trigger).</summary>
    public static string ImageFile(int label, string what) => $"trigger-{label}-{what}.png";

    /// <summary>
    /// Writes scan.json (the full report) and per label the mask, the pattern and one held-out clean image stamped with the
    /// label's trigger (PNG, the model's input size); returns the file names written.
    /// </summary>
    public static IReadOnlyList<string> WriteFiles(ScanResult scan, ImageDataset clean, Action<string, byte[]> write)
    {
        var files = new List<string>();
        write(FileName, JsonSerializer.SerializeToUtf8Bytes(From(scan, withTriggers: true), Json));
        files.Add(FileName);
        var labels = clean.Labels.data<long>().ToArray();
        var channels = clean.Channels;
        foreach (var label in scan.Labels)
        {
            var (mask, pattern) = label.Trigger.Tensors(channels);
            using (mask)
            using (pattern)
            {
                write(ImageFile(label.Label, "mask"), ImageCodec.EncodePng(mask.squeeze(0)));
                write(ImageFile(label.Label, "pattern"), ImageCodec.EncodePng(pattern.squeeze(0)));
                files.AddRange([ImageFile(label.Label, "mask"), ImageFile(label.Label, "pattern")]);
            }

            if (labels.Length == 0) continue;

            // The first held-out image of another label (any clean image when nothing was held out).
            var rows = scan.HoldoutRows.Length > 0 ? scan.HoldoutRows : Enumerable.Range(0, labels.Length).Select(i => (long)i).ToArray();
            var row = rows.Cast<long?>().FirstOrDefault(r => labels[r!.Value] != label.Label) ?? rows.FirstOrDefault();
            using var one = clean.Subset([row]);
            using var stamped = label.Trigger.ApplyTo(one.Images);
            write(ImageFile(label.Label, "example"), ImageCodec.EncodePng(stamped.squeeze(0)));
            files.Add(ImageFile(label.Label, "example"));
        }

        return files;
    }

    public static JsonSerializerOptions Json { get; } = new(JsonSerializerDefaults.Web) { WriteIndented = true };
}
