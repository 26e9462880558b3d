using System.Diagnostics;
using WebDefense.Core.Data;
using WebDefense.Core.Data.Triggers;
using WebDefense.Core.Defenses;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Evaluation;
using WebDefense.Core.Scanning;

namespace WebDefense.Core.Runs;

public static partial class RunWorker
{
    /// <summary>
    /// A scan run: the backdoor scan of the model on the clean data; with a test set (and a backdoor test set or a trigger
    /// with the target label) the model's real ACC/ASR as "before". Writes scan.json, the trigger images, metrics.json/.csv,
    /// trajectory.json (one point per label: mask norm and anomaly index) and log.txt; no model.
    /// </summary>
    private static int ExecuteScan(RunSpec spec, string device, RunLog log, Stopwatch total, CancellationToken ct)
    {
        var description = DefenseCatalog.Scan;
        var parameters = DefenseParameters.Resolve(description.Parameters, spec.Parameters.ToDictionary(kv => kv.Key, kv => (object)kv.Value));
        var input = CreateInput(spec.Model);
        var trigger = spec.TriggerJson is { } json ? TriggerSpec.FromJson(json) : null;
        trigger?.Validate(input.Channels, input.Height, input.Width);
        var load = Stopwatch.StartNew();
        using var loaded = LoadModel(spec, description.Name, input, log);
        var readOptions = new DatasetReadOptions { Channels = input.Channels, NumClasses = spec.Model.NumClasses };
        var disposables = new List<IDisposable>();
        try
        {
            var clean = Read(spec.CleanData ?? throw new DefenseInputException("the backdoor scan needs a clean data set"), "clean data", readOptions, input, log, disposables);
            var (test, backdoorTest) = ReadTestSets(spec, readOptions, input, log, disposables);
            backdoorTest = CompleteBackdoorTest(spec, test, backdoorTest, trigger, log, disposables);
            load.Stop();
            ct.ThrowIfCancellationRequested();

            TorchSharp.torch.random.manual_seed(spec.Seed);
            loaded.Classifier.MoveTo(TorchSharp.torch.device(device));
            var before = test is null ? null : Evaluator.Evaluate(loaded.Classifier, test, backdoorTest, spec.TargetLabel ?? 0);
            if (before is not null) log.Emit(new MetricsEvent("before", before));
            var observer = new EventObserver(log);
            var scan = BackdoorScan.Run(loaded.Classifier, clean, parameters, new Random(spec.Seed), observer, ct);
            var trajectory = scan.Labels.Select(l => new TrajectoryPoint(l.Label, "label", Note: l.Flagged ? "flagged" : null, Phase: "scan",
                Values: new Dictionary<string, double> { ["mask_norm"] = l.MaskNorm, ["anomaly_index"] = l.AnomalyIndex, ["holdout_asr"] = l.HoldoutAsr ?? double.NaN }
                    .Where(kv => !double.IsNaN(kv.Value)).ToDictionary())).ToList();
            foreach (var point in trajectory) observer.Point(point);

            var files = ScanReport.WriteFiles(scan, clean, (name, bytes) => WriteAtomic(spec.OutputDirectory, name, bytes));
            var report = ScanReport.From(scan, withTriggers: false);
            var findings = new Dictionary<string, object>
            {
                ["suspected"] = scan.Suspected,
                ["flagged_labels"] = scan.FlaggedLabels,
                ["largest_anomaly_index"] = scan.Labels.Max(l => l.AnomalyIndex),
                ["median_mask_norm"] = scan.Median,
            };
            if (scan.TargetLabel is { } target)
            {
                findings["detected_backdoor_label"] = target;
                findings["anomaly_index"] = scan.Labels[target].AnomalyIndex;
                findings["mask_norm"] = scan.Labels[target].MaskNorm;
                if (scan.EstimatedAsr is { } e) findings["estimated_asr"] = e;
            }

            var chosen = new OperatingPoint(scan.TargetLabel ?? -1, scan.Summary);
            total.Stop();
            var metrics = new Dictionary<string, object?>
            {
                ["runId"] = spec.RunId,
                ["defense"] = description.Name,
                ["kind"] = "scan",
                ["seed"] = spec.Seed,
                ["targetLabel"] = spec.TargetLabel,
                ["modelFormat"] = loaded.Format.ToString(),
                ["before"] = before,
                ["scan"] = report,
                ["resolvedParameters"] = parameters.Values,
                ["findings"] = findings,
                ["device"] = device,
                ["timings"] = new Dictionary<string, double>
                {
                    ["loadSeconds"] = load.Elapsed.TotalSeconds,
                    ["scanSeconds"] = scan.Seconds,
                    ["wallSeconds"] = total.Elapsed.TotalSeconds,
                },
            };
            WriteRunFiles(spec, log, metrics, trajectory);
            log.Emit(new CompletedEvent(before, null, null, chosen, parameters.Values, findings, total.Elapsed.TotalSeconds, device, ModelFile: null)
            {
                Scan = report,
                ScanFiles = files,
            });
            return ExitSucceeded;
        }
        finally
        {
            foreach (var d in disposables)
            {
                d.Dispose();
            }
        }
    }
}
