using System.Diagnostics;
using TorchSharp;
using WebDefense.Core.Data;
using WebDefense.Core.Evaluation;
using WebDefense.Core.Models;
using WebDefense.Core.Runtime;
using WebDefense.Core.Scanning;
using static TorchSharp.torch;

namespace WebDefense.Core.Defenses.Framework;

/// <summary>A defense cannot run with the inputs given (missing backdoor samples, shape mismatch…).</summary>
public sealed class DefenseInputException(string message) : Exception(message);

/// <summary>Everything needed to run one defense once. The test sets are only used for before/after reporting.</summary>
public sealed record DefenseRequest
{
    public required IDefense Defense { get; init; }
    public required Classifier Model { get; init; }
    public required ImageDataset CleanData { get; init; }
    public BackdoorSamples? Backdoor { get; init; }
    public int? TargetLabel { get; init; }
    public IReadOnlyDictionary<string, object>? Parameters { get; init; }
    public int Seed { get; init; }
    public ImageDataset? TestSet { get; init; }

    /// <summary>
    /// The metrics of this model on these test sets, trigger and target measured by an earlier run: used as the
    /// "before" numbers instead of evaluating again (evaluation is deterministic, so they are the same numbers).
    /// </summary>
    public BackdoorMetrics? KnownBefore { get; init; }

    /// <summary>Triggered test images with their TRUE labels (target-class images are skipped by the metrics).</summary>
    public ImageDataset? BackdoorTestSet { get; init; }

    public IDefenseObserver Observer { get; init; } = NullDefenseObserver.Instance;
    public CancellationToken Cancellation { get; init; }
    public Device? Device { get; init; }
}

/// <summary>
/// The outcome of a run: resolved parameters, metrics before and after, trajectory, choice, findings, the purified model,
/// what happened to the backdoor (<see cref="Outcome"/>) and, when the run scanned first, the scan.
/// </summary>
public sealed record DefenseResult(
    string Defense,
    IReadOnlyDictionary<string, object> Parameters,
    int Seed,
    BackdoorMetrics? Before,
    BackdoorMetrics? After,
    double? Der,
    IReadOnlyList<TrajectoryPoint> Trajectory,
    OperatingPoint Chosen,
    IReadOnlyDictionary<string, object> Findings,
    TimeSpan WallTime,
    Classifier Purified) : IDisposable
{
    public required BackdoorOutcome Outcome { get; init; }

    /// <summary>The scan that ran first (no backdoor samples and the <c>scan</c> parameter on), null otherwise.</summary>
    public ScanResult? Scan { get; init; }

    /// <summary>The reconstructed trigger's ASR on the scan's held-out clean images, on the model before and after; null without a suspected backdoor.</summary>
    public double? EstimatedAsrBefore { get; init; }
    public double? EstimatedAsrAfter { get; init; }

    /// <summary>Whether <see cref="Before"/> came from <see cref="DefenseRequest.KnownBefore"/> instead of an evaluation.</summary>
    public bool BeforeReused { get; init; }

    /// <summary>Seconds spent evaluating the test sets before and after the defense (0 when not evaluated).</summary>
    public double EvaluateBeforeSeconds { get; init; }
    public double EvaluateAfterSeconds { get; init; }

    public void Dispose() => Purified.Dispose();
}

/// <summary>Runs a defense on a copy of the model; the caller's model is left untouched.</summary>
public static class DefenseRunner
{
    /// <summary>Checks what can be checked before any work: parameters, required data, shapes, labels.</summary>
    public static DefenseParameters Validate(DefenseRequest request)
    {
        var parameters = DefenseParameters.Resolve(request.Defense.Parameters, request.Parameters);
        var needs = request.Defense.Needs;
        if (needs.HasFlag(DefenseNeeds.BackdoorSamples) && request.Backdoor is null && !ScanAssistance.Enabled(parameters))
        {
            throw new DefenseInputException($"{request.Defense.Title} needs backdoor samples: give a trigger spec or upload triggered images with their true labels, or leave the scan on to rebuild the trigger from the clean data.");
        }

        var input = request.Model.Input;
        try
        {
            input.EnsureMatches(request.CleanData, "clean data");
            if (request.Backdoor is { } backdoor) input.EnsureMatches(backdoor.Images, "backdoor samples");
            if (request.TestSet is { } test) input.EnsureMatches(test, "test set");
            if (request.BackdoorTestSet is { } bdTest) input.EnsureMatches(bdTest, "backdoor test set");
        }
        catch (DatasetFileException ex)
        {
            throw new DefenseInputException(ex.Message);
        }

        if (request.BackdoorTestSet is not null && request.TargetLabel is null)
        {
            throw new DefenseInputException("a backdoor test set needs the attack's target label to compute ASR");
        }

        if (request.TargetLabel is { } target && (target < 0 || target >= request.Model.NumClasses))
        {
            throw new DefenseInputException($"target label {target} is outside 0..{request.Model.NumClasses - 1}");
        }

        return parameters;
    }

    public static DefenseResult Run(DefenseRequest request)
    {
        var parameters = Validate(request);
        var device = request.Device ?? CPU;
        torch.random.manual_seed(request.Seed);
        if (device.type == DeviceType.CUDA) torch.cuda.manual_seed_all(request.Seed);
        var random = new Random(request.Seed);
        var scanFirst = request.Backdoor is null && ScanAssistance.Enabled(parameters) && request.CleanData.Count > 0;
        // Steps: evaluate before (with test sets), the scan's (when it scans first), the defense's, evaluate after.
        var measuring = request.TestSet is not null;
        var first = measuring ? 1 : 0;
        var scanSteps = scanFirst ? BackdoorScanSteps : 0;
        var steps = first + scanSteps + request.Defense.Steps.Count + first;
        var evaluation = Stopwatch.StartNew();
        BackdoorMetrics? before = null;
        var observer = new ShiftedObserver(request.Observer, first + scanSteps, steps, estimated: scanFirst);
        ScanResult? scan = null;
        ImageDataset? stamped = null;
        ImageDataset? holdout = null;
        // The run's copy, on the run's device: measured before (it is still the model as given), scanned, purified, measured after.
        var purified = request.Model.Clone().MoveTo(device);
        try
        {
            if (measuring)
            {
                request.Observer.StepStarted(0, steps, EvaluateBefore);
                if (request.KnownBefore is { } known)
                {
                    before = known;
                    request.Observer.Log("before: the metrics an earlier run measured on this model with the same test sets, trigger and target label (not evaluated again)");
                }
                else
                {
                    before = Measure(request, purified, "the model as given");
                }
            }

            var evaluateBefore = evaluation.Elapsed.TotalSeconds;
            var backdoor = request.Backdoor;
            var validationTarget = request.TargetLabel;
            if (scanFirst)
            {
                // The scan's own Random, so that the defense's draws stay those of a run with backdoor samples.
                scan = BackdoorScan.Run(purified, request.CleanData, DefenseParameters.Resolve(DefenseCatalog.Scan.Parameters), new Random(request.Seed),
                    request.Observer, request.Cancellation, stepOffset: first, stepCount: steps);
                holdout = request.CleanData.Subset(scan.HoldoutRows);
                if (scan.Trigger is { } reconstructed && scan.TargetLabel is { } suspected)
                {
                    stamped = reconstructed.ApplyWithTrueLabels(request.CleanData);
                    backdoor = new BackdoorSamples(stamped, PairedWithClean: true);
                    validationTarget = suspected;
                    request.Observer.Log($"the defense's validation slice gets copies stamped with the reconstructed trigger of label {suspected}: its validation ASR is an estimate");
                }
                else if (request.Defense.Needs.HasFlag(DefenseNeeds.BackdoorSamples))
                {
                    throw new DefenseInputException($"{request.Defense.Title} needs backdoor samples and the scan found no backdoor to rebuild them from ({scan.Summary}); give a trigger spec or triggered images.");
                }
                else
                {
                    request.Observer.Log("the scan suspects no label: the defense runs without backdoor samples");
                }
            }

            var watch = Stopwatch.StartNew();
            var outcome = request.Defense.Run(new DefenseContext
            {
                Model = purified,
                CleanData = request.CleanData,
                Backdoor = backdoor,
                TargetLabel = validationTarget,
                Parameters = parameters,
                MaxValidationAsr = ScanAssistance.SelectionBound(parameters),
                Seed = request.Seed,
                Random = random,
                Observer = observer,
                Cancellation = request.Cancellation,
                Device = device,
            });
            watch.Stop();
            evaluation.Restart();
            if (measuring) request.Observer.StepStarted(steps - 1, steps, EvaluateAfter);
            var after = measuring ? Measure(request, purified, "the defended model") : null;
            var evaluateAfter = evaluation.Elapsed.TotalSeconds;
            var der = before is not null && after is not null ? BackdoorMetrics.Der(before, after) : null;
            double? estimatedBefore = null, estimatedAfter = null;
            if (scan?.Trigger is { } trigger && scan.TargetLabel is { } target && holdout is not null)
            {
                estimatedBefore = scan.EstimatedAsr;
                estimatedAfter = BackdoorScan.EstimateAsr(purified, holdout, trigger, target);
            }

            var changed = !SameWeights(request.Model, purified);
            // The purified model goes back to the host, where the caller saves, exports or evaluates it further.
            purified.MoveTo(CPU);
            var trajectory = stamped is not null ? outcome.Trajectory.Select(ShiftedObserver.Estimated).ToList() : outcome.Trajectory;
            return new DefenseResult(request.Defense.Name, parameters.Values, request.Seed, before, after, der,
                trajectory, outcome.Chosen, outcome.Findings, watch.Elapsed, purified)
            {
                Outcome = DecideOutcome(before, after, scan, estimatedBefore, estimatedAfter, changed),
                Scan = scan,
                EstimatedAsrBefore = estimatedBefore,
                EstimatedAsrAfter = estimatedAfter,
                BeforeReused = request.KnownBefore is not null && measuring,
                EvaluateBeforeSeconds = evaluateBefore,
                EvaluateAfterSeconds = evaluateAfter,
            };
        }
        catch
        {
            purified.Dispose();
            throw;
        }
        finally
        {
            stamped?.Dispose();
            holdout?.Dispose();
            GcQuietRegion.Release();
        }
    }

    /// <summary>The steps a scan adds in front of a defense's own.</summary>
    public const int BackdoorScanSteps = 3;

    /// <summary>The runner's own steps around the defense's when there are test sets to measure on.</summary>
    public const string EvaluateBefore = "evaluate before";
    public const string EvaluateAfter = "evaluate after";

    /// <summary>Real ASR from the backdoor test set when there is one; otherwise the scan's estimate; otherwise unknown.</summary>
    private static BackdoorOutcome DecideOutcome(BackdoorMetrics? before, BackdoorMetrics? after, ScanResult? scan, double? estimatedBefore, double? estimatedAfter, bool changed)
    {
        if (before?.Asr is not null && after?.Asr is not null)
        {
            return BackdoorOutcome.Decide(before.Asr, after.Asr, BackdoorOutcome.Measured, changed);
        }

        if (estimatedBefore is not null && estimatedAfter is not null)
        {
            return BackdoorOutcome.Decide(estimatedBefore, estimatedAfter, BackdoorOutcome.Estimated, changed);
        }

        var why = scan is null
            ? "No backdoor test set and no scan: what happened to the backdoor is unknown."
            : $"The scan found no backdoor ({scan.Summary}), and without a backdoor test set the ASR is not measured.";
        return BackdoorOutcome.Decide(null, null, BackdoorOutcome.None, changed, why);
    }

    /// <summary>Whether two models hold exactly the same parameters and buffers.</summary>
    public static bool SameWeights(Classifier a, Classifier b)
    {
        using var scope = NewDisposeScope();
        var left = a.Module.state_dict();
        var right = b.Module.state_dict();
        return left.Count == right.Count && left.All(kv => right.TryGetValue(kv.Key, out var other) && kv.Value.shape.SequenceEqual(other.shape) && kv.Value.eq(other.to(kv.Value.device)).all().item<bool>());
    }

    /// <summary>ACC (and ASR, RA) on the test sets, reporting the images done as the step's progress about every 2%.</summary>
    private static BackdoorMetrics Measure(DefenseRequest request, Classifier model, string what)
    {
        var reported = 0.0;
        return Evaluator.Evaluate(model, request.TestSet!, request.BackdoorTestSet, request.TargetLabel ?? 0, progress: (done, total) =>
        {
            var fraction = (double)done / Math.Max(1, total);
            if (fraction - reported < 0.02 && done < total) return;
            reported = fraction;
            request.Cancellation.ThrowIfCancellationRequested();
            request.Observer.Progress(fraction, $"{what}: {done:N0} of {total:N0} test images");
        });
    }
}

/// <summary>
/// Passes a defense's events on with its steps numbered after the runner's and the scan's (of <paramref name="total"/>
/// in all), and, for a run that scanned first, its validation ASR/RA, measured with the scan's reconstructed trigger,
/// moved to the named values <c>estimated_val_asr</c> / <c>estimated_val_ra</c> (a series of its own, labelled as an estimate).
/// </summary>
internal sealed class ShiftedObserver(IDefenseObserver inner, int offset, int total, bool estimated) : IDefenseObserver
{
    public const string EstimatedAsr = "estimated_val_asr";
    public const string EstimatedRa = "estimated_val_ra";

    public void StepStarted(int index, int count, string step) => inner.StepStarted(index + offset, total, step);
    public void Progress(double fractionOfStep, string message) =>
        inner.Progress(fractionOfStep, estimated ? message.Replace("val ASR", "est. val ASR", StringComparison.Ordinal) : message);
    public void Point(TrajectoryPoint point) => inner.Point(estimated ? Estimated(point) : point);
    public void Log(string message) => inner.Log(message);

    public static TrajectoryPoint Estimated(TrajectoryPoint point)
    {
        if (point.ValAsr is null && point.ValRa is null)
        {
            return point;
        }

        var values = point.Values is null ? new Dictionary<string, double>() : new Dictionary<string, double>(point.Values);
        if (point.ValAsr is { } asr) values[EstimatedAsr] = asr;
        if (point.ValRa is { } ra) values[EstimatedRa] = ra;
        return point with { ValAsr = null, ValRa = null, Values = values };
    }
}
