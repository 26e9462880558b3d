using System.Diagnostics;
using TorchSharp;
using WebDefense.Core.Data;
using WebDefense.Core.Evaluation;
using WebDefense.Core.Models;
using WebDefense.Core.Runtime;
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

    /// <summary>Triggered test images with their TRUE labels (target-class images are skipped by the metrics).</summary>
    public ImageDataset? BackdoorTestSet { get; init; }

    public IDefenseObserver Observer { get; init; } = NullDefenseObserver.Instance;
    public CancellationToken Cancellation { get; init; }
    public Device? Device { get; init; }
}

/// <summary>The outcome of a run: resolved parameters, metrics before and after, trajectory, choice, findings and the purified model.</summary>
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
        if (needs.HasFlag(DefenseNeeds.BackdoorSamples) && request.Backdoor is null)
        {
            throw new DefenseInputException($"{request.Defense.Title} needs backdoor samples: give a trigger spec or upload triggered images with their true labels.");
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
        var before = Measure(request, request.Model, device);
        var purified = request.Model.Clone();
        try
        {
            var watch = Stopwatch.StartNew();
            var outcome = request.Defense.Run(new DefenseContext
            {
                Model = purified,
                CleanData = request.CleanData,
                Backdoor = request.Backdoor,
                TargetLabel = request.TargetLabel,
                Parameters = parameters,
                Seed = request.Seed,
                Random = new Random(request.Seed),
                Observer = request.Observer,
                Cancellation = request.Cancellation,
                Device = device,
            });
            watch.Stop();
            var after = Measure(request, purified, device);
            var der = before is not null && after is not null ? BackdoorMetrics.Der(before, after) : null;
            return new DefenseResult(request.Defense.Name, parameters.Values, request.Seed, before, after, der,
                outcome.Trajectory, outcome.Chosen, outcome.Findings, watch.Elapsed, purified);
        }
        catch
        {
            purified.Dispose();
            throw;
        }
        finally
        {
            GcQuietRegion.Release();
        }
    }

    private static BackdoorMetrics? Measure(DefenseRequest request, Classifier model, Device device) =>
        request.TestSet is null ? null : Evaluator.Evaluate(model, request.TestSet, request.BackdoorTestSet, request.TargetLabel ?? 0, device: device);
}
