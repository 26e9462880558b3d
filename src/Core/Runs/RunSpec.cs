using System.Text.Json;
using System.Text.Json.Serialization;

namespace WebDefense.Core.Runs;

/// <summary>
/// A model file to load and what the uploader declared about it; for a training-time defense (no input model) only
/// the declaration: <see cref="Path"/> is null and <see cref="Architecture"/> names the zoo architecture to train.
/// </summary>
public sealed record RunModelInput
{
    /// <summary>The suspect model file; null for a training-time defense, which trains a fresh <see cref="Architecture"/>.</summary>
    public string? Path { get; init; }

    /// <summary>Zoo name for state-dict formats; null for TorchScript.</summary>
    public string? Architecture { get; init; }

    public required int NumClasses { get; init; }

    /// <summary>Channels, height, width.</summary>
    public required int[] InputShape { get; init; }

    public required float[] Mean { get; init; }
    public required float[] Std { get; init; }
}

/// <summary>A stored data file (npz, image-folder zip, CIFAR-10 binary, zip of IDX files) and its original name.</summary>
public sealed record RunDatasetInput
{
    public required string Path { get; init; }
    public required string FileName { get; init; }
}

/// <summary>
/// Everything a worker process needs to execute one defense run, written as JSON by the service and read by
/// the worker. Paths are absolute; the worker writes its artifacts into <see cref="OutputDirectory"/>.
/// A training-time defense (<c>DefenseCatalog.TrainingTime</c>, e.g. advrbd) takes <see cref="PoisonedTrain"/> and a
/// <see cref="Model"/> without a path (architecture, classes, input shape and normalisation only) instead of a model file
/// and clean data.
/// </summary>
public sealed record RunSpec
{
    public required Guid RunId { get; init; }
    public required string Defense { get; init; }
    public Dictionary<string, JsonElement> Parameters { get; init; } = new();
    public int Seed { get; init; }
    public required RunModelInput Model { get; init; }
    /// <summary>
    /// The untrusted training set of a training-time defense. An .npz may carry the ground truth as a bool array
    /// <c>poisoned</c> (N values); then detection precision and recall are reported.
    /// </summary>
    public RunDatasetInput? PoisonedTrain { get; init; }

    /// <summary>The defender's clean data; null only for data-free defenses (CLP) and training-time defenses.</summary>
    public RunDatasetInput? CleanData { get; init; }
    public RunDatasetInput? TestSet { get; init; }

    /// <summary>Triggered test images with their TRUE labels.</summary>
    public RunDatasetInput? BackdoorTestSet { get; init; }

    /// <summary>Uploaded triggered images with their TRUE labels (unpaired backdoor samples).</summary>
    public RunDatasetInput? BackdoorSamples { get; init; }

    /// <summary>A trigger spec (JSON, see TriggerSpec): builds paired backdoor samples from the clean data and, without an uploaded backdoor test set, the backdoor test set from the test set.</summary>
    public string? TriggerJson { get; init; }

    public int? TargetLabel { get; init; }

    /// <summary>
    /// "Before" metrics an earlier run measured on the same model file and declaration, test sets, trigger and target
    /// (the server looks them up); the run uses them instead of evaluating the model as given again.
    /// </summary>
    public WebDefense.Core.Evaluation.BackdoorMetrics? KnownBefore { get; init; }

    public required string OutputDirectory { get; init; }
    public int Threads { get; init; } = 1;
    /// <summary>The device setting: auto, cpu, cuda or cuda:N (see ComputeDevice).</summary>
    public string Device { get; init; } = "cpu";

    public static JsonSerializerOptions Json { get; } = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new JsonStringEnumConverter() },
    };
}
