using WebDefense.Core.Data;
using WebDefense.Core.Evaluation;
using WebDefense.Core.Models;
using WebDefense.Core.Training;
using static TorchSharp.torch;

namespace WebDefense.Core.Defenses.Framework;

/// <summary>
/// Everything a training-time defense may look at: the untrusted (possibly poisoned) training set and a factory for
/// fresh models of the chosen architecture. There is no clean data and no test set: every choice uses the untrusted
/// set only. <see cref="Truth"/>, when known, is for reporting intermediate detection quality, never for choosing.
/// </summary>
public sealed class TrainingDefenseContext
{
    /// <summary>A new, randomly initialised model of the chosen architecture (draws from torch's seeded generator).</summary>
    public required Func<Classifier> CreateModel { get; init; }

    /// <summary>The untrusted training set, labels as given (poisoned samples carry the attacker's labels).</summary>
    public required ImageDataset Train { get; init; }

    /// <summary>Ground-truth poison flags of <see cref="Train"/> when known; for trajectory reporting only.</summary>
    public PoisonTruth? Truth { get; init; }

    public required DefenseParameters Parameters { get; init; }
    public int Seed { get; init; }
    public Random Random { get; init; } = new(0);
    public IDefenseObserver Observer { get; init; } = NullDefenseObserver.Instance;
    public CancellationToken Cancellation { get; init; }
    public Device Device { get; init; } = CPU;
}

/// <summary>
/// What a training-time defense returns: the model it trained, a suspicion score per training sample (higher = more
/// likely poisoned; <see cref="SuspicionMeaning"/> says what it is), the rows it suspects, its stage trajectory, the
/// rule that decided, findings, and optional further per-sample columns (e.g. a consistency score).
/// </summary>
public sealed record TrainingDefenseOutcome(
    Classifier Model,
    IReadOnlyList<double> Suspicion,
    string SuspicionMeaning,
    IReadOnlyList<int> Suspected,
    IReadOnlyList<TrajectoryPoint> Trajectory,
    OperatingPoint Chosen,
    IReadOnlyDictionary<string, object> Findings,
    IReadOnlyDictionary<string, IReadOnlyList<double>>? SampleColumns = null) : IDisposable
{
    public void Dispose() => Model.Dispose();
}

/// <summary>
/// A training-time defense: trains a model from an untrusted training set so that the backdoor is not learned, and
/// names the samples it suspects. One implementation per file, built from the shared blocks.
/// </summary>
public interface ITrainingDefense : IDefenseDescription
{
    /// <summary>
    /// The SGD recipe of the defense's final model for these parameters; the runner trains the undefended comparison
    /// model (the whole untrusted set, no defense) with the same recipe.
    /// </summary>
    SgdOptions Recipe(DefenseParameters parameters, InputSpec input);

    TrainingDefenseOutcome Run(TrainingDefenseContext context);
}
