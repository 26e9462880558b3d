using System.Diagnostics;
using System.Globalization;
using TorchSharp;
using WebDefense.Core.Data;
using WebDefense.Core.Data.Triggers;
using WebDefense.Core.Defenses;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Models;
using WebDefense.Core.Scanning;

namespace WebDefense.Core.Runs;

public static partial class RunWorker
{
    /// <summary>
    /// A post-training defense: loads the model and the data, runs the defense (after a backdoor scan when no backdoor
    /// samples were given and the scan parameter is on), and writes the purified model, the scan's files and the run files.
    /// </summary>
    private static int ExecutePostTraining(RunSpec spec, IDefense defense, string device, RunLog log, Stopwatch total, CancellationToken ct)
    {
        var input = CreateInput(spec.Model);
        var trigger = spec.TriggerJson is { } json ? TriggerSpec.FromJson(json) : null;
        trigger?.Validate(input.Channels, input.Height, input.Width);
        ct.ThrowIfCancellationRequested();

        var load = Stopwatch.StartNew();
        using var loaded = LoadModel(spec, defense.Name, input, log);
        var readOptions = new DatasetReadOptions
        {
            Channels = input.Channels,
            NumClasses = spec.Model.NumClasses,
        };

        var disposables = new List<IDisposable>();
        try
        {
            ImageDataset clean;
            if (spec.CleanData is { } cleanFile)
            {
                clean = Read(cleanFile, "clean data", readOptions, input, log, disposables);
            }
            else if (defense.Needs.HasFlag(DefenseNeeds.CleanData))
            {
                throw new DefenseInputException($"{defense.Name} needs a clean data set");
            }
            else
            {
                clean = new ImageDataset(torch.zeros(0, input.Channels, input.Height, input.Width, torch.ScalarType.Byte), torch.zeros(0, torch.ScalarType.Int64));
                disposables.Add(clean);
                log.Log($"no clean data: {defense.Name} runs data-free");
            }

            ct.ThrowIfCancellationRequested();
            var (test, backdoorTest) = ReadTestSets(spec, readOptions, input, log, disposables);
            BackdoorSamples? backdoor = null;
            if (spec.BackdoorSamples is { } bs)
            {
                backdoor = new BackdoorSamples(Read(bs, "backdoor samples", readOptions, input, log, disposables), PairedWithClean: false);
            }
            else if (trigger is not null)
            {
                var triggered = trigger.ApplyWithTrueLabels(clean);
                disposables.Add(triggered);
                backdoor = new BackdoorSamples(triggered, PairedWithClean: true);
                log.Log($"backdoor samples: {triggered.Count} triggered copies of the clean data");
            }

            backdoorTest = CompleteBackdoorTest(spec, test, backdoorTest, trigger, log, disposables);
            load.Stop();
            ct.ThrowIfCancellationRequested();

            var parameters = spec.Parameters.ToDictionary(kv => kv.Key, kv => (object)kv.Value);
            var observer = new EventObserver(log);
            var defenseWatch = Stopwatch.StartNew();
            using var result = DefenseRunner.Run(new DefenseRequest
            {
                Defense = defense,
                Model = loaded.Classifier,
                CleanData = clean,
                Backdoor = backdoor,
                TargetLabel = spec.TargetLabel,
                Parameters = parameters,
                Seed = spec.Seed,
                TestSet = test,
                BackdoorTestSet = backdoorTest,
                KnownBefore = spec.KnownBefore,
                Observer = observer,
                Cancellation = ct,
                Device = TorchSharp.torch.device(device),
            });
            defenseWatch.Stop();
            ct.ThrowIfCancellationRequested();

            if (result.Before is { } before) log.Emit(new MetricsEvent("before", before));
            if (result.After is { } after) log.Emit(new MetricsEvent("after", after));
            log.Log($"chosen: x = {result.Chosen.X.ToString(CultureInfo.InvariantCulture)} ({result.Chosen.Rule})");
            log.Log($"outcome: {result.Outcome.Summary}");

            var modelFile = "model" + ModelLoader.Extension(loaded.Format);
            WriteModel(result.Purified, loaded.Format, spec.OutputDirectory, modelFile);
            var scanFiles = result.Scan is { } scan ? ScanReport.WriteFiles(scan, clean, (name, bytes) => WriteAtomic(spec.OutputDirectory, name, bytes)) : null;
            var scanReport = result.Scan is { } s ? ScanReport.From(s, withTriggers: false) : null;
            total.Stop();
            var completed = new CompletedEvent(result.Before, result.After, result.Der, result.Chosen, result.Parameters, result.Findings,
                total.Elapsed.TotalSeconds, device, modelFile)
            {
                Outcome = result.Outcome, Scan = scanReport, ScanFiles = scanFiles,
                EstimatedAsrBefore = result.EstimatedAsrBefore, EstimatedAsrAfter = result.EstimatedAsrAfter,
                BeforeReused = result.BeforeReused,
            };

            var metrics = new Dictionary<string, object?>
            {
                ["runId"] = spec.RunId,
                ["defense"] = defense.Name,
                ["seed"] = spec.Seed,
                ["targetLabel"] = spec.TargetLabel,
                ["modelFormat"] = loaded.Format.ToString(),
                ["before"] = result.Before,
                ["beforeReused"] = result.BeforeReused,
                ["after"] = result.After,
                ["der"] = result.Der,
                ["outcome"] = result.Outcome,
                ["estimatedAsrBefore"] = result.EstimatedAsrBefore,
                ["estimatedAsrAfter"] = result.EstimatedAsrAfter,
                ["scan"] = scanReport,
                ["chosen"] = result.Chosen,
                ["resolvedParameters"] = result.Parameters,
                ["findings"] = result.Findings,
                ["device"] = device,
                ["modelFile"] = modelFile,
                ["timings"] = new Dictionary<string, double>
                {
                    ["loadSeconds"] = load.Elapsed.TotalSeconds,
                    ["evaluateBeforeSeconds"] = result.EvaluateBeforeSeconds,
                    ["defenseSeconds"] = result.WallTime.TotalSeconds,
                    ["evaluateAfterSeconds"] = result.EvaluateAfterSeconds,
                    ["runSeconds"] = defenseWatch.Elapsed.TotalSeconds,
                    ["wallSeconds"] = total.Elapsed.TotalSeconds,
                },
            };
            WriteRunFiles(spec, log, metrics, result.Trajectory);
            log.Emit(completed);
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
