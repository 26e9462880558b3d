using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using WebDefense.Core.Data;
using WebDefense.Core.Data.Triggers;
using WebDefense.Core.Defenses;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Models;
using WebDefense.Core.Runtime;
using WebDefense.Core.Scanning;

namespace WebDefense.Core.Runs;

/// <summary>
/// Executes one <see cref="RunSpec"/> in the current process: loads the model and data, runs the defense,
/// reports <see cref="RunEvent"/>s and writes the artifacts. No ASP.NET here; the worker process and tests call it.
/// </summary>
public static partial class RunWorker
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

        if (string.Equals(spec.Defense, BackdoorScan.ScanName, StringComparison.OrdinalIgnoreCase))
        {
            return ExecuteScan(spec, device, log, total, ct);
        }

        return ExecutePostTraining(spec, DefenseCatalog.Get(spec.Defense), device, log, total, ct);
    }

    /// <summary>
    /// The device the run computes on, which is what it records: the setting resolved here (auto, cuda:N checked against
    /// what libtorch sees). The runners move the run's model copy there and every batch, mask and counter follows it.
    /// </summary>
    private static string ComputeDeviceOf(string setting, RunLog log)
    {
        var info = TorchRuntime.EnsureAvailable();
        var resolved = ComputeDevice.Resolve(setting, info.CudaAvailable, info.CudaDeviceCount);
        log.Log($"device: '{setting}' resolves to {resolved}; the run computes there");
        return resolved;
    }

    /// <summary>metrics.json, metrics.csv, trajectory.json and log.txt: the files every succeeded run writes besides its model.</summary>
    private static void WriteRunFiles<TMetrics>(RunSpec spec, RunLog log, TMetrics metrics, IReadOnlyList<TrajectoryPoint> trajectory)
    {
        WriteAtomic(spec.OutputDirectory, "metrics.json", JsonSerializer.Serialize(metrics, ArtifactJson));
        WriteAtomic(spec.OutputDirectory, "metrics.csv", TrajectoryCsv(trajectory));
        WriteAtomic(spec.OutputDirectory, "trajectory.json", JsonSerializer.Serialize(trajectory, ArtifactJson));
        // The run's log is served to its team: the file names, never the server's directories.
        log.Log("artifacts written: metrics.json, metrics.csv, trajectory.json");
        TryWriteLog(spec, log);
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

    private static LoadedModel LoadModel(RunSpec spec, string what, InputSpec input, RunLog log)
    {
        var declaration = new ModelDeclaration(spec.Model.Architecture, spec.Model.NumClasses, input);
        var loaded = ModelLoader.Load(spec.Model.Path ?? throw new DefenseInputException($"{what} needs a model file"), declaration);
        foreach (var warning in loaded.Warnings)
        {
            log.Log("model: " + warning);
        }

        log.Log($"model loaded: {loaded.Format}, {loaded.ParameterCount:N0} parameters");
        return loaded;
    }

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

    private static void WriteAtomic(string directory, string fileName, string content) =>
        WriteAtomic(directory, fileName, new UTF8Encoding(false).GetBytes(content));

    private static void WriteAtomic(string directory, string fileName, byte[] content)
    {
        var temp = Path.Combine(directory, $".{fileName}.{Guid.NewGuid():N}.tmp");
        File.WriteAllBytes(temp, content);
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
