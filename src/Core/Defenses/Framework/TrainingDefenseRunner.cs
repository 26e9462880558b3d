using System.Diagnostics;
using TorchSharp;
using WebDefense.Core.Data;
using WebDefense.Core.Evaluation;
using WebDefense.Core.Models;
using WebDefense.Core.Models.Zoo;
using WebDefense.Core.Runtime;
using WebDefense.Core.Training;
using static TorchSharp.torch;

namespace WebDefense.Core.Defenses.Framework;

/// <summary>
/// One run of a training-time defense: a zoo architecture, an untrusted training set (and its poisoning truth when
/// known), optional test sets that are used only for the final metrics.
/// </summary>
public sealed record TrainingDefenseRequest
{
    public required ITrainingDefense Defense { get; init; }

    /// <summary>A zoo architecture name (<see cref="ModelZoo.Names"/>).</summary>
    public required string Architecture { get; init; }

    public required int NumClasses { get; init; }
    public required InputSpec Input { get; init; }
    public required ImageDataset Train { get; init; }
    public PoisonTruth? Truth { get; init; }
    public IReadOnlyDictionary<string, object>? Parameters { get; init; }
    public int Seed { get; init; }
    public ImageDataset? TestSet { get; init; }

    /// <summary>Triggered test images with their TRUE labels (target-class images are skipped by the metrics).</summary>
    public ImageDataset? BackdoorTestSet { get; init; }

    public int? TargetLabel { get; init; }

    /// <summary>
    /// Also train the undefended comparison model (same recipe, the whole untrusted set) and measure it as "before";
    /// only when a test set is given.
    /// </summary>
    public bool TrainUndefended { get; init; } = true;

    public IDefenseObserver Observer { get; init; } = NullDefenseObserver.Instance;
    public CancellationToken Cancellation { get; init; }
    public Device? Device { get; init; }
}

/// <summary>
/// The outcome of a training-time run: the trained model, the suspected samples with every sample's suspicion, the
/// detection quality when the truth is known, test metrics of the undefended comparison model ("before") and of the
/// defended one ("after"), the trajectory, choice and findings.
/// </summary>
public sealed record TrainingDefenseResult(
    string Defense,
    IReadOnlyDictionary<string, object> Parameters,
    int Seed,
    BackdoorMetrics? Undefended,
    BackdoorMetrics? After,
    double? Der,
    DetectionMetrics? Detection,
    IReadOnlyList<double> Suspicion,
    string SuspicionMeaning,
    IReadOnlyDictionary<string, IReadOnlyList<double>> SampleColumns,
    IReadOnlyList<int> Suspected,
    IReadOnlyList<TrajectoryPoint> Trajectory,
    OperatingPoint Chosen,
    IReadOnlyDictionary<string, object> Findings,
    TimeSpan WallTime,
    TimeSpan? UndefendedWallTime,
    Classifier Model) : IDisposable
{
    public void Dispose() => Model.Dispose();
}

/// <summary>Runs a training-time defense and, for comparison, plain training on the same untrusted data.</summary>
public static class TrainingDefenseRunner
{
    /// <summary>Checks what can be checked before any work: parameters, architecture, shapes, labels, truth size.</summary>
    public static DefenseParameters Validate(TrainingDefenseRequest request)
    {
        var parameters = DefenseParameters.Resolve(request.Defense.Parameters, request.Parameters);
        if (!ModelZoo.Contains(request.Architecture))
        {
            throw new DefenseInputException($"unknown architecture '{request.Architecture}'; a training-time defense trains one of: {string.Join(", ", ModelZoo.Names.Select(n => n.Name))}");
        }

        if (request.NumClasses < 2)
        {
            throw new DefenseInputException($"a classifier needs at least 2 classes, got {request.NumClasses}");
        }

        try
        {
            request.Input.EnsureMatches(request.Train, "poisoned training set");
            if (request.TestSet is { } test) request.Input.EnsureMatches(test, "test set");
            if (request.BackdoorTestSet is { } bdTest) request.Input.EnsureMatches(bdTest, "backdoor test set");
        }
        catch (DatasetFileException ex)
        {
            throw new DefenseInputException(ex.Message);
        }

        if (request.Train.Count < 2)
        {
            throw new DefenseInputException($"the poisoned training set holds {request.Train.Count} sample(s); a training-time defense needs a training set");
        }

        using (var scope = NewDisposeScope())
        {
            var (min, max) = (request.Train.Labels.min().item<long>(), request.Train.Labels.max().item<long>());
            if (min < 0 || max >= request.NumClasses)
            {
                throw new DefenseInputException($"the poisoned training set holds labels {min}..{max}, outside 0..{request.NumClasses - 1}");
            }
        }

        if (request.Truth is { } truth && truth.Count != request.Train.Count)
        {
            throw new DefenseInputException($"{truth.Count} poison flags for {request.Train.Count} training samples");
        }

        if (request.BackdoorTestSet is not null && request.TargetLabel is null)
        {
            throw new DefenseInputException("a backdoor test set needs the attack's target label to compute ASR");
        }

        if (request.TargetLabel is { } target && (target < 0 || target >= request.NumClasses))
        {
            throw new DefenseInputException($"target label {target} is outside 0..{request.NumClasses - 1}");
        }

        return parameters;
    }

    public static TrainingDefenseResult Run(TrainingDefenseRequest request)
    {
        var parameters = Validate(request);
        var device = request.Device ?? CPU;
        var defense = request.Defense;
        var compare = request.TrainUndefended && request.TestSet is not null;
        var steps = defense.Steps.Count + (compare ? 1 : 0);
        var observer = new StepCountObserver(request.Observer, steps);
        // Initial weights drawn on the host (the same for a seed on every device), then moved to the run's device.
        Classifier Create() => ModelZoo.CreateClassifier(request.Architecture, request.NumClasses, request.Input).MoveTo(device);
        if (device.type == DeviceType.CUDA) torch.cuda.manual_seed_all(request.Seed);
        try
        {
            var watch = Stopwatch.StartNew();
            torch.random.manual_seed(request.Seed);
            var outcome = defense.Run(new TrainingDefenseContext
            {
                CreateModel = Create,
                Train = request.Train,
                Truth = request.Truth,
                Parameters = parameters,
                Seed = request.Seed,
                Random = new Random(request.Seed),
                Observer = observer,
                Cancellation = request.Cancellation,
                Device = device,
            });
            watch.Stop();
            try
            {
                var after = Measure(request, outcome.Model);
                BackdoorMetrics? undefended = null;
                TimeSpan? undefendedTime = null;
                var trajectory = outcome.Trajectory.ToList();
                if (compare)
                {
                    observer.StepStarted(steps - 1, steps, "undefended comparison");
                    var plain = Stopwatch.StartNew();
                    var recipe = defense.Recipe(parameters, request.Input);
                    using var model = TrainWithoutDefense(Create, request.Train, recipe, request.Seed, e =>
                    {
                        var point = new TrajectoryPoint(e.Epoch + 1, "epoch", Loss: e.Loss, Note: "plain training on the whole untrusted set",
                            Phase: "undefended", Values: new Dictionary<string, double> { ["train_acc"] = e.TrainAccuracy });
                        trajectory.Add(point);
                        observer.Point(point);
                        observer.Progress((e.Epoch + 1.0) / recipe.Epochs, $"undefended epoch {e.Epoch + 1}: train ACC {e.TrainAccuracy:P1}");
                    }, request.Cancellation);
                    undefended = Measure(request, model);
                    undefendedTime = plain.Elapsed;
                }

                var der = undefended is not null && after is not null ? BackdoorMetrics.Der(undefended, after) : null;
                // The trained model goes back to the host, where the caller saves or evaluates it further.
                outcome.Model.MoveTo(CPU);
                var detection = request.Truth?.Score(outcome.Suspected.Distinct().ToList());
                return new TrainingDefenseResult(defense.Name, parameters.Values, request.Seed, undefended, after, der, detection,
                    outcome.Suspicion, outcome.SuspicionMeaning, outcome.SampleColumns ?? new Dictionary<string, IReadOnlyList<double>>(), outcome.Suspected,
                    trajectory, outcome.Chosen, outcome.Findings, watch.Elapsed, undefendedTime, outcome.Model);
            }
            catch
            {
                outcome.Dispose();
                throw;
            }
        }
        finally
        {
            GcQuietRegion.Release();
        }
    }

    /// <summary>
    /// Plain training with <paramref name="recipe"/> on <paramref name="data"/>: torch seeded with <paramref name="seed"/>
    /// for the initial weights, the batches and augmentation drawn from <c>new Random(seed)</c>. The model is left in eval mode.
    /// </summary>
    public static Classifier TrainWithoutDefense(Func<Classifier> create, ImageDataset data, SgdOptions recipe, int seed,
        Action<EpochReport>? onEpoch = null, CancellationToken cancellation = default)
    {
        torch.random.manual_seed(seed);
        var model = create();
        try
        {
            new TrainingLoop { Model = model, Data = data, Options = recipe, OnEpoch = onEpoch }.Run(new Random(seed), cancellation);
            model.Module.eval();
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    private static BackdoorMetrics? Measure(TrainingDefenseRequest request, Classifier model) =>
        request.TestSet is null ? null : Evaluator.Evaluate(model, request.TestSet, request.BackdoorTestSet, request.TargetLabel ?? 0);

    /// <summary>Passes everything through, reporting the total number of steps (the defense's plus the comparison).</summary>
    private sealed class StepCountObserver(IDefenseObserver inner, int steps) : IDefenseObserver
    {
        public void StepStarted(int index, int count, string step) => inner.StepStarted(index, steps, step);
        public void Progress(double fractionOfStep, string message) => inner.Progress(fractionOfStep, message);
        public void Point(TrajectoryPoint point) => inner.Point(point);
        public void Log(string message) => inner.Log(message);
    }
}
