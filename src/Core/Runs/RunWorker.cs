using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using TorchSharp;
using WebDefense.Core.Data;
using WebDefense.Core.Data.Triggers;
using WebDefense.Core.Defenses;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Evaluation;
using WebDefense.Core.Models;
using WebDefense.Core.Models.Zoo;
using WebDefense.Core.Runtime;

namespace WebDefense.Core.Runs;

/// <summary>
/// Executes one <see cref="RunSpec"/> in the current process: loads the model and data, runs the defense,
/// reports <see cref="RunEvent"/>s and writes the artifacts. No ASP.NET here; the worker process and tests call it.
/// </summary>
public static class RunWorker
{
    public const int ExitSucceeded = 0;
    public const int ExitInternalError = 1;
    public const int ExitUserError = 2;
    public const int ExitCancelled = 3;

    /// <summary>Runs the spec; returns 0 (success), 1 (internal error), 2 (bad user input) or 3 (cancelled). Never throws.</summary>
    public static int Execute(RunSpec spec, Action<RunEvent> emit, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(emit);
        var log = new RunLog(emit);
        try
        {
            return ExecuteCore(spec, log, ct);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            log.Log("cancelled");
            TryWriteLog(spec, log);
            return ExitCancelled;
        }
        catch (Exception e) when (IsUserError(e))
        {
            log.Log("failed: " + e.Message);
            TryWriteLog(spec, log);
            log.Emit(new FailedEvent(e.Message, UserError: true));
            return ExitUserError;
        }
        catch (Exception e)
        {
            log.Log($"internal error: {e}");
            TryWriteLog(spec, log);
            log.Emit(new FailedEvent(e.Message, UserError: false));
            return ExitInternalError;
        }
    }

    /// <summary>Exceptions that mean the user's input is at fault (model, data, trigger, parameters).</summary>
    public static bool IsUserError(Exception e) => e is ModelFileException or DatasetFileException or InvalidTriggerException
        or DefenseInputException or DefenseParameterException;

    private static int ExecuteCore(RunSpec spec, RunLog log, CancellationToken ct)
    {
        var total = Stopwatch.StartNew();
        TorchRuntime.UseThreads(spec.Threads);
        Directory.CreateDirectory(spec.OutputDirectory);
        log.Log($"worker process {Environment.ProcessId} started: run {spec.RunId}, defense {spec.Defense}, seed {spec.Seed}, {spec.Threads} thread(s)");

        var device = ComputeDeviceOf(spec.Device, log);
        if (DefenseCatalog.FindTrainingTime(spec.Defense) is { } trainingDefense)
        {
            return ExecuteTraining(spec, trainingDefense, device, log, total, ct);
        }

        var defense = DefenseCatalog.Get(spec.Defense);
        var input = CreateInput(spec.Model);
        var declaration = new ModelDeclaration(spec.Model.Architecture, spec.Model.NumClasses, input);
        var trigger = spec.TriggerJson is { } json ? TriggerSpec.FromJson(json) : null;
        trigger?.Validate(input.Channels, input.Height, input.Width);
        ct.ThrowIfCancellationRequested();

        var load = Stopwatch.StartNew();
        using var loaded = ModelLoader.Load(spec.Model.Path ?? throw new DefenseInputException($"{defense.Name} needs a model file"), declaration);
        foreach (var warning in loaded.Warnings)
        {
            log.Log("model: " + warning);
        }

        log.Log($"model loaded: {loaded.Format}, {loaded.ParameterCount:N0} parameters");
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
                Observer = observer,
                Cancellation = ct,
            });
            defenseWatch.Stop();
            ct.ThrowIfCancellationRequested();

            if (result.Before is { } before) log.Emit(new MetricsEvent("before", before));
            if (result.After is { } after) log.Emit(new MetricsEvent("after", after));
            log.Log($"chosen: x = {result.Chosen.X.ToString(CultureInfo.InvariantCulture)} ({result.Chosen.Rule})");

            var modelFile = "model" + ModelLoader.Extension(loaded.Format);
            WriteModel(result.Purified, loaded.Format, spec.OutputDirectory, modelFile);
            total.Stop();
            var completed = new CompletedEvent(result.Before, result.After, result.Der, result.Chosen, result.Parameters, result.Findings,
                total.Elapsed.TotalSeconds, device, modelFile);

            var metrics = new Dictionary<string, object?>
            {
                ["runId"] = spec.RunId,
                ["defense"] = defense.Name,
                ["seed"] = spec.Seed,
                ["targetLabel"] = spec.TargetLabel,
                ["modelFormat"] = loaded.Format.ToString(),
                ["before"] = result.Before,
                ["after"] = result.After,
                ["der"] = result.Der,
                ["chosen"] = result.Chosen,
                ["resolvedParameters"] = result.Parameters,
                ["findings"] = result.Findings,
                ["device"] = device,
                ["modelFile"] = modelFile,
                ["timings"] = new Dictionary<string, double>
                {
                    ["loadSeconds"] = load.Elapsed.TotalSeconds,
                    ["defenseSeconds"] = result.WallTime.TotalSeconds,
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

    /// <summary>
    /// The device the run computes on, which is what it records. The setting is resolved here (auto, cuda:N checked
    /// against what libtorch sees). The defenses compute on the CPU whatever DefenseContext.Device says (they do not
    /// move models or batches yet), so this worker passes them no device and a CUDA setting is logged, not recorded.
    /// </summary>
    private static string ComputeDeviceOf(string setting, RunLog log)
    {
        var info = TorchRuntime.EnsureAvailable();
        var resolved = ComputeDevice.Resolve(setting, info.CudaAvailable, info.CudaDeviceCount);
        if (resolved != ComputeDevice.Cpu)
        {
            log.Log($"device: '{setting}' resolves to {resolved}, but the defenses compute on the CPU in this version; the run records cpu (docs/gpu.md)");
        }

        return ComputeDevice.Cpu;
    }

    /// <summary>metrics.json, metrics.csv, trajectory.json and log.txt: the files every succeeded run writes besides its model.</summary>
    private static void WriteRunFiles<TMetrics>(RunSpec spec, RunLog log, TMetrics metrics, IReadOnlyList<TrajectoryPoint> trajectory)
    {
        WriteAtomic(spec.OutputDirectory, "metrics.json", JsonSerializer.Serialize(metrics, ArtifactJson));
        WriteAtomic(spec.OutputDirectory, "metrics.csv", TrajectoryCsv(trajectory));
        WriteAtomic(spec.OutputDirectory, "trajectory.json", JsonSerializer.Serialize(trajectory, ArtifactJson));
        log.Log($"artifacts written to {spec.OutputDirectory}");
        TryWriteLog(spec, log);
    }

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

    private static (ImageDataset? Test, ImageDataset? BackdoorTest) ReadTestSets(RunSpec spec, DatasetReadOptions options, InputSpec input, RunLog log, List<IDisposable> owned)
    {
        var test = spec.TestSet is { } t ? Read(t, "test set", options, input, log, owned) : null;
        var backdoorTest = spec.BackdoorTestSet is { } bt ? Read(bt, "backdoor test set", options, input, log, owned) : null;
        return (test, backdoorTest);
    }

    /// <summary>Builds the backdoor test set from the trigger when none was uploaded, and says what cannot be measured.</summary>
    private static ImageDataset? CompleteBackdoorTest(RunSpec spec, ImageDataset? test, ImageDataset? backdoorTest, TriggerSpec? trigger, RunLog log, List<IDisposable> owned)
    {
        if (backdoorTest is null && test is not null && trigger is not null && spec.TargetLabel is { } target)
        {
            if (target < 0 || target >= spec.Model.NumClasses)
            {
                throw new DefenseInputException($"target label {target} is outside 0..{spec.Model.NumClasses - 1}");
            }

            var built = BackdoorTestSet.Build(test, trigger, target);
            owned.Add(built);
            backdoorTest = built.Data;
            log.Log($"backdoor test set: {backdoorTest.Count} triggered test images (target {target} excluded)");
        }

        if (test is null)
        {
            log.Log("no test set: before/after metrics are not computed");
        }
        else if (backdoorTest is null)
        {
            log.Log("no backdoor test set (upload one or give a trigger and the target label): ASR and RA are not computed");
        }

        return backdoorTest;
    }

    private static readonly JsonSerializerOptions ArtifactJson = new(RunEventJson.Options) { WriteIndented = true };

    private static InputSpec CreateInput(RunModelInput model)
    {
        if (model.InputShape is not { Length: 3 })
        {
            throw new DefenseInputException($"the model input shape needs 3 values (channels, height, width), got {model.InputShape?.Length ?? 0}");
        }

        try
        {
            return InputSpec.Create(model.InputShape[0], model.InputShape[1], model.InputShape[2], model.Mean, model.Std);
        }
        catch (ArgumentException e)
        {
            throw new DefenseInputException("invalid model input declaration: " + e.Message);
        }
    }

    private static ImageDataset Read(RunDatasetInput file, string what, DatasetReadOptions options, InputSpec input, RunLog log, List<IDisposable> owned)
    {
        LabelledDataset labelled;
        try
        {
            // An image-folder zip is decoded at the model's input size, as its upload was (the service validated that
            // stored shape against the model); other formats carry their shape and ignore the target size.
            labelled = DatasetReader.Read(file.Path, options with { TargetSize = (input.Height, input.Width) });
        }
        catch (DatasetFileException e)
        {
            throw new DatasetFileException($"{what} ({file.FileName}): {e.Message}");
        }

        owned.Add(labelled);
        input.EnsureMatches(labelled.Data, $"{what} ({file.FileName})");
        log.Log($"{what}: {labelled.Data.Count} images of {labelled.Data.Channels}×{labelled.Data.Height}×{labelled.Data.Width} from {file.FileName}");
        return labelled.Data;
    }

    private static void WriteModel(Models.Classifier model, ModelFileFormat format, string directory, string fileName)
    {
        // Written under its final name in a private folder (the .pt writer names its archive after the file), then moved.
        var temp = Path.Combine(directory, ".tmp-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(temp);
        try
        {
            var path = Path.Combine(temp, fileName);
            ModelLoader.Save(model, format, path);
            File.Move(path, Path.Combine(directory, fileName), overwrite: true);
        }
        finally
        {
            Directory.Delete(temp, recursive: true);
        }
    }

    private static void WriteAtomic(string directory, string fileName, string content)
    {
        var temp = Path.Combine(directory, $".{fileName}.{Guid.NewGuid():N}.tmp");
        File.WriteAllText(temp, content, new UTF8Encoding(false));
        File.Move(temp, Path.Combine(directory, fileName), overwrite: true);
    }

    private static void TryWriteLog(RunSpec spec, RunLog log)
    {
        try
        {
            Directory.CreateDirectory(spec.OutputDirectory);
            WriteAtomic(spec.OutputDirectory, "log.txt", log.Text());
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The events carry the same lines; a log file that cannot be written must not hide the run's outcome.
        }
    }

    /// <summary>
    /// phase,x,x_label,val_acc,val_asr,val_ra,loss,note — one row per trajectory point — followed by one column per
    /// named value (<see cref="TrajectoryPoint.Values"/>) in order of first appearance, when any point has them.
    /// </summary>
    public static string TrajectoryCsv(IEnumerable<TrajectoryPoint> points)
    {
        var list = points.ToList();
        var extra = list.SelectMany(p => p.Values?.Keys ?? []).Distinct().ToList();
        var sb = new StringBuilder("phase,x,x_label,val_acc,val_asr,val_ra,loss,note");
        foreach (var name in extra) sb.Append(',').Append(Csv(name));
        sb.Append('\n');
        foreach (var p in list)
        {
            sb.Append(Csv(p.Phase)).Append(',').Append(Num(p.X)).Append(',').Append(Csv(p.XLabel)).Append(',')
                .Append(Num(p.ValAcc)).Append(',').Append(Num(p.ValAsr)).Append(',').Append(Num(p.ValRa)).Append(',')
                .Append(Num(p.Loss)).Append(',').Append(Csv(p.Note));
            foreach (var name in extra) sb.Append(',').Append(Num(p.Values is { } v && v.TryGetValue(name, out var value) ? value : null));
            sb.Append('\n');
        }

        return sb.ToString();

        static string Num(double? v) => v?.ToString("R", CultureInfo.InvariantCulture) ?? "";

        static string Csv(string? s) => s is null ? "" :
            s.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? "\"" + s.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : s;
    }

    /// <summary>Serialises emission (observers may be called from several threads) and keeps the log lines.</summary>
    private sealed class RunLog(Action<RunEvent> emit)
    {
        private readonly object _gate = new();
        private readonly StringBuilder _lines = new();

        public void Emit(RunEvent runEvent)
        {
            lock (_gate)
            {
                emit(runEvent);
            }
        }

        public void Log(string message) => Line(message, emitEvent: true);

        public void Line(string message, bool emitEvent)
        {
            var at = DateTimeOffset.UtcNow;
            lock (_gate)
            {
                _lines.Append(at.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture)).Append(' ').Append(message).Append('\n');
                if (emitEvent) emit(new LogEvent(at, message));
            }
        }

        public string Text()
        {
            lock (_gate)
            {
                return _lines.ToString();
            }
        }
    }

    private sealed class EventObserver(RunLog log) : IDefenseObserver
    {
        private int _index;
        private int _count = 1;
        private string _step = "";

        public void StepStarted(int index, int count, string step)
        {
            (_index, _count, _step) = (index, Math.Max(count, 1), step);
            log.Line($"step {index + 1}/{count}: {step}", emitEvent: false);
            log.Emit(new StepEvent(index, count, step));
            log.Emit(new ProgressEvent(Math.Clamp((double)index / _count, 0, 1), step, step));
        }

        public void Progress(double fractionOfStep, string message) =>
            log.Emit(new ProgressEvent(Math.Clamp((_index + Math.Clamp(fractionOfStep, 0, 1)) / _count, 0, 1), _step, message));

        public void Point(TrajectoryPoint point) => log.Emit(new PointEvent(point));

        public void Log(string message) => log.Log(message);
    }
}
