using System.Diagnostics;
using System.Globalization;
using System.Text;
using WebDefense.Core.Data;
using WebDefense.Core.Data.Triggers;
using WebDefense.Core.Defenses;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Evaluation;
using WebDefense.Core.Models;
using WebDefense.Core.Models.Zoo;

namespace WebDefense.Core.Runs;

public static partial class RunWorker
{
    /// <summary>The per-sample file of a training-time run: every training sample's suspicion and whether it is suspected.</summary>
    public const string SuspectedSamplesFile = "suspected.csv";

    /// <summary>
    /// A training-time defense: reads the untrusted training set (and its poison flags, when the .npz has them), trains
    /// with the defense and, with a test set, the undefended comparison ("before"), and writes the trained model
    /// (PyTorch state dict, model.pt), suspected.csv, metrics.json/.csv, trajectory.json and log.txt.
    /// </summary>
    private static int ExecuteTraining(RunSpec spec, ITrainingDefense defense, string device, RunLog log, Stopwatch total, CancellationToken ct)
    {
        var input = CreateInput(spec.Model);
        if (spec.Model.Path is not null)
        {
            throw new DefenseInputException($"{defense.Name} trains a new model from the poisoned training set; it takes an architecture, not a model file");
        }

        if (spec.Model.Architecture is not { } architecture || !ModelZoo.Contains(architecture))
        {
            throw new DefenseInputException($"{defense.Name} needs an architecture from the zoo: {string.Join(", ", ModelZoo.Names.Select(n => n.Name))}");
        }

        var trainFile = spec.PoisonedTrain ?? throw new DefenseInputException($"{defense.Name} needs a poisoned-train data set");
        var trigger = spec.TriggerJson is { } json ? TriggerSpec.FromJson(json) : null;
        trigger?.Validate(input.Channels, input.Height, input.Width);
        ct.ThrowIfCancellationRequested();

        var load = Stopwatch.StartNew();
        var readOptions = new DatasetReadOptions { Channels = input.Channels, NumClasses = spec.Model.NumClasses };
        var disposables = new List<IDisposable>();
        try
        {
            var train = Read(trainFile, "poisoned training set", readOptions, input, log, disposables);
            var flags = ReadPoisonFlags(trainFile, readOptions, train.Count);

            log.Log(flags is null ? "no poison flags in the training set: detection precision/recall are not computed"
                : $"poison flags: {flags.Count(f => f)} of {flags.Length} samples are poisoned (used for reporting only)");
            var (test, backdoorTest) = ReadTestSets(spec, readOptions, input, log, disposables);
            backdoorTest = CompleteBackdoorTest(spec, test, backdoorTest, trigger, log, disposables);
            load.Stop();
            ct.ThrowIfCancellationRequested();

            var runWatch = Stopwatch.StartNew();
            using var result = TrainingDefenseRunner.Run(new TrainingDefenseRequest
            {
                Defense = defense,
                Architecture = architecture,
                NumClasses = spec.Model.NumClasses,
                Input = input,
                Train = train,
                Truth = flags is null ? null : new PoisonTruth(flags),
                Parameters = spec.Parameters.ToDictionary(kv => kv.Key, kv => (object)kv.Value),
                Seed = spec.Seed,
                TestSet = test,
                BackdoorTestSet = backdoorTest,
                TargetLabel = spec.TargetLabel,
                Observer = new EventObserver(log),
                Cancellation = ct,
                Device = TorchSharp.torch.device(device),
            });
            runWatch.Stop();
            ct.ThrowIfCancellationRequested();

            if (result.Undefended is { } before) log.Emit(new MetricsEvent("before", before));
            if (result.After is { } after) log.Emit(new MetricsEvent("after", after));
            if (result.Detection is { } d) log.Log($"detection: {d.TruePositives} of {d.Poisoned} poisoned samples among {d.Suspected} suspected (precision {d.Precision:P2}, recall {d.Recall:P2})");
            log.Log($"chosen: {result.Chosen.Rule}");

            const string modelFile = "model.pt";
            WriteModel(result.Model, ModelFileFormat.PyTorchStateDict, spec.OutputDirectory, modelFile);
            WriteAtomic(spec.OutputDirectory, SuspectedSamplesFile, SuspectedCsv(result, train, flags));
            total.Stop();
            var metrics = new Dictionary<string, object?>
            {
                ["runId"] = spec.RunId,
                ["defense"] = defense.Name,
                ["kind"] = "training-time",
                ["architecture"] = architecture,
                ["seed"] = spec.Seed,
                ["targetLabel"] = spec.TargetLabel,
                ["trainSamples"] = train.Count,
                ["before"] = result.Undefended,
                ["beforeMeaning"] = "the same architecture trained on the whole poisoned training set with the defense's recipe, no defense",
                ["after"] = result.After,
                ["der"] = result.Der,
                ["detection"] = result.Detection is { } det ? new Dictionary<string, object>
                {
                    ["precision"] = det.Precision, ["recall"] = det.Recall, ["f1"] = det.F1,
                    ["suspected"] = det.Suspected, ["poisoned"] = det.Poisoned, ["truePositives"] = det.TruePositives,
                } : null,
                ["suspected"] = result.Suspected.Count,
                ["suspicion"] = result.SuspicionMeaning,
                ["chosen"] = result.Chosen,
                ["resolvedParameters"] = result.Parameters,
                ["findings"] = result.Findings,
                ["device"] = device,
                ["modelFile"] = modelFile,
                ["suspectedFile"] = SuspectedSamplesFile,
                ["timings"] = new Dictionary<string, double?>
                {
                    ["loadSeconds"] = load.Elapsed.TotalSeconds,
                    ["defenseSeconds"] = result.WallTime.TotalSeconds,
                    ["undefendedSeconds"] = result.UndefendedWallTime?.TotalSeconds,
                    ["runSeconds"] = runWatch.Elapsed.TotalSeconds,
                    ["wallSeconds"] = total.Elapsed.TotalSeconds,
                },
            };
            WriteRunFiles(spec, log, metrics, result.Trajectory);
            var findings = new Dictionary<string, object>(result.Findings) { ["suspected"] = result.Suspected.Count };
            log.Emit(new CompletedEvent(result.Undefended, result.After, result.Der, result.Chosen, result.Parameters, findings,
                total.Elapsed.TotalSeconds, device, modelFile, SuspectedSamplesFile, result.Suspected.Count, result.Detection));
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

    private static bool[]? ReadPoisonFlags(RunDatasetInput file, DatasetReadOptions options, int imageCount)
    {
        try
        {
            return NumpyReader.ReadPoisonFlags(File.ReadAllBytes(file.Path), file.FileName, options, imageCount);
        }
        catch (DatasetFileException e)
        {
            throw new DatasetFileException($"poisoned training set ({file.FileName}): {e.Message}");
        }
    }

    /// <summary>index,label,suspected,suspicion[,extra columns][,poisoned]: one row per training sample, in order.</summary>
    public static string SuspectedCsv(TrainingDefenseResult result, ImageDataset train, IReadOnlyList<bool>? poisoned)
    {
        var labels = train.Labels.data<long>().ToArray();
        var suspected = result.Suspected.ToHashSet();
        var columns = result.SampleColumns.ToList();
        var sb = new StringBuilder("index,label,suspected,suspicion");
        foreach (var (name, _) in columns) sb.Append(',').Append(name);
        sb.Append(poisoned is null ? "\n" : ",poisoned\n");
        for (var i = 0; i < labels.Length; i++)
        {
            sb.Append(i.ToString(CultureInfo.InvariantCulture)).Append(',').Append(labels[i].ToString(CultureInfo.InvariantCulture)).Append(',')
                .Append(suspected.Contains(i) ? '1' : '0').Append(',').Append(result.Suspicion[i].ToString("R", CultureInfo.InvariantCulture));
            foreach (var (_, values) in columns) sb.Append(',').Append(values[i].ToString("R", CultureInfo.InvariantCulture));
            if (poisoned is not null) sb.Append(',').Append(poisoned[i] ? '1' : '0');
            sb.Append('\n');
        }

        return sb.ToString();
    }
}
