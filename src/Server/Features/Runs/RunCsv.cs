using System.Globalization;
using System.Text;
using WebDefense.Server.Data;

namespace WebDefense.Server.Features.Runs;

/// <summary>The run history as CSV (RFC 4180 quoting; metrics as fractions, as in the JSON API).</summary>
public static class RunCsv
{
    public static readonly string[] Columns =
    [
        "id", "batch_id", "status", "defense", "model_id", "model_name", "seed", "target_label",
        "before_acc", "before_asr", "before_ra", "after_acc", "after_asr", "after_ra", "der",
        "chosen_rule", "device", "wall_seconds", "created_at", "finished_at",
        "kind", "architecture", "poisoned_train_dataset_id", "suspected", "detection_precision", "detection_recall",
        "outcome", "outcome_basis", "model_changed", "estimated_asr_before", "estimated_asr_after",
    ];

    public static string Write(IEnumerable<RunRecord> runs, IReadOnlyDictionary<Guid, string> modelNames)
    {
        var csv = new StringBuilder();
        csv.AppendLine(string.Join(',', Columns));
        foreach (var r in runs)
        {
            string?[] row =
            [
                r.Id.ToString(), r.BatchId?.ToString(), r.Status.ToString(), r.Defense, r.ModelId?.ToString(),
                r.ModelId is { } modelId && modelNames.TryGetValue(modelId, out var name) ? name : null, N(r.Seed), N(r.TargetLabel),
                N(r.BeforeAcc), N(r.BeforeAsr), N(r.BeforeRa), N(r.AfterAcc), N(r.AfterAsr), N(r.AfterRa), N(r.Der),
                r.ChosenRule, r.Device, N(r.WallSeconds), r.CreatedAt.ToString("O", CultureInfo.InvariantCulture),
                r.FinishedAt?.ToString("O", CultureInfo.InvariantCulture),
                r.Kind, r.Architecture, r.PoisonedTrainDatasetId?.ToString(), N(r.SuspectedCount), N(r.DetectionPrecision), N(r.DetectionRecall),
                r.Outcome, r.OutcomeBasis, r.ModelChanged is { } changed ? (changed ? "true" : "false") : null, N(r.EstimatedAsrBefore), N(r.EstimatedAsrAfter),
            ];
            csv.AppendLine(string.Join(',', row.Select(Quote)));
        }

        return csv.ToString();
    }

    private static string? N(double? v) => v?.ToString("R", CultureInfo.InvariantCulture);

    private static string? N(int? v) => v?.ToString(CultureInfo.InvariantCulture);

    private static string Quote(string? value)
    {
        if (string.IsNullOrEmpty(value)) return "";
        // A leading =, +, - or @ would make spreadsheets evaluate the cell; such cells get a leading apostrophe.
        if (value[0] is '=' or '+' or '@' || (value[0] == '-' && !double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out _))) value = "'" + value;
        return value.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? $"\"{value.Replace("\"", "\"\"", StringComparison.Ordinal)}\"" : value;
    }
}
