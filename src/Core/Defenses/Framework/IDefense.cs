using WebDefense.Core.Data;
using WebDefense.Core.Models;
using static TorchSharp.torch;

namespace WebDefense.Core.Defenses.Framework;

/// <summary>What a defense needs from the defender besides the suspect model.</summary>
[Flags]
public enum DefenseNeeds
{
    None = 0,
    CleanData = 1,
    /// <summary>Triggered images with their TRUE labels (from a trigger spec or uploaded).</summary>
    BackdoorSamples = 2,
    PoisonedTrainingSet = 4,
}

/// <summary>
/// Triggered images with their TRUE labels. When <see cref="PairedWithClean"/> is true, row i is the
/// triggered copy of row i of the clean data (built from a trigger spec); otherwise they were uploaded.
/// </summary>
public sealed record BackdoorSamples(ImageDataset Images, bool PairedWithClean);

/// <summary>
/// Everything a defense may look at. Test sets are deliberately absent: selection uses the defender's own
/// data only. The defense purifies <see cref="Model"/> in place (the runner hands it a copy).
/// </summary>
public sealed class DefenseContext
{
    public required Classifier Model { get; init; }
    public required ImageDataset CleanData { get; init; }
    public BackdoorSamples? Backdoor { get; init; }

    /// <summary>The attack's target label when the defender knows it (validation ASR); null otherwise.</summary>
    public int? TargetLabel { get; init; }

    public required DefenseParameters Parameters { get; init; }

    /// <summary>
    /// The ASR bound of ASR-aware selection (the shared <c>max_val_asr</c> parameter; null: select on ACC alone). Used
    /// only when the validation slice has triggered images (<see cref="Backdoor"/> and <see cref="TargetLabel"/>).
    /// </summary>
    public double? MaxValidationAsr { get; init; }

    public int Seed { get; init; }
    public Random Random { get; init; } = new(0);
    public IDefenseObserver Observer { get; init; } = NullDefenseObserver.Instance;
    public CancellationToken Cancellation { get; init; }
    public Device Device { get; init; } = CPU;
}

/// <summary>What a defense reports besides the purified model.</summary>
public sealed record DefenseOutcome(IReadOnlyList<TrajectoryPoint> Trajectory, OperatingPoint Chosen, IReadOnlyDictionary<string, object> Findings);

/// <summary>What the API shows about a defense of either kind: names, needs, steps and the parameter schema.</summary>
public interface IDefenseDescription
{
    /// <summary>Stable identifier used by the API, e.g. "grad-prune".</summary>
    string Name { get; }
    string Title { get; }
    string Description { get; }

    /// <summary>Citation and link of the paper.</summary>
    string Paper { get; }
    DefenseNeeds Needs { get; }
    IReadOnlyList<ParameterSpec> Parameters { get; }
    IReadOnlyList<string> Steps { get; }
}

/// <summary>A post-training defense: a named sequence of steps that purifies a model. One implementation per file.</summary>
public interface IDefense : IDefenseDescription
{
    DefenseOutcome Run(DefenseContext context);
}
