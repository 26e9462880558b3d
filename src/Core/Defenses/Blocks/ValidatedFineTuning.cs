using WebDefense.Core.Data;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Models;
using WebDefense.Core.Training;

namespace WebDefense.Core.Defenses.Blocks;

/// <summary>
/// Fine-tuning (any loss, any step hooks) that scores the model on the defender's validation slice after every
/// epoch, records one trajectory point per epoch (x = epoch; epoch 0 is the starting model, shown but not a
/// candidate) and keeps either the epoch with the highest validation ACC (ties go to the later epoch: more
/// fine-tuning at equal clean accuracy) or, as the BackdoorBench trainers do, the last epoch. With a validation ASR
/// and an ASR bound (<see cref="DefenseContext.MaxValidationAsr"/>), the best epoch is the highest-ACC epoch among those
/// whose validation ASR is at most the bound and whose validation ACC is within <see cref="AccTolerance"/> of the
/// starting model's; when none is, the highest-ACC epoch as without the bound.
/// </summary>
public sealed class ValidatedFineTuning
{
    public sealed record Result(IReadOnlyList<TrajectoryPoint> Points, int ChosenEpoch, ValidationScores Chosen, string Rule, int EpochsRun)
    {
        /// <summary>
        /// The outcome of a defense whose operating point is this chosen epoch: findings chosen_epoch, epochs_run and
        /// final_val_acc, then the defense's own, then final_val_asr when the slice measured one.
        /// </summary>
        public DefenseOutcome Outcome(params (string Key, object Value)[] own)
        {
            var findings = new Dictionary<string, object> { ["chosen_epoch"] = ChosenEpoch, ["epochs_run"] = EpochsRun, ["final_val_acc"] = Chosen.Acc };
            foreach (var (key, value) in own) findings[key] = value;
            if (Chosen.Asr is { } asr) findings["final_val_asr"] = asr;
            return new DefenseOutcome(Points, new OperatingPoint(ChosenEpoch, Rule), findings);
        }
    }

    public required Classifier Model { get; init; }
    public required ImageDataset Train { get; init; }
    public required ValidationSet Validation { get; init; }
    public required SgdOptions Options { get; init; }

    /// <summary>true: best validation ACC among the epochs; false: the last epoch (the reference).</summary>
    public bool KeepBest { get; init; } = true;

    public Func<Classifier, TrainingBatch, BatchLoss>? Loss { get; init; }
    public Action? BeforeStep { get; init; }
    public Action? AfterStep { get; init; }
    public string Phase { get; init; } = "fine-tune";

    /// <summary>The least <see cref="AccTolerance"/>: 3 points, the pruning defenses' default ACC bound.</summary>
    public const double MaxAccDropForAsr = 0.03;

    /// <summary>
    /// How much validation ACC an epoch chosen for its validation ASR may lose against the starting model: 3 points, or
    /// the slice's own resolution when that is coarser, two standard errors of the starting accuracy on its n images
    /// plus one image (2·√(p(1−p)/n) + 1/n). On 50 images a lucky 98% start would otherwise rule out every epoch at
    /// 94%, two images down, and keep an epoch whose estimated ASR is 96% over epochs at 2%.
    /// </summary>
    public static double AccTolerance(double startAcc, int images) =>
        images <= 0 ? MaxAccDropForAsr : Math.Max(MaxAccDropForAsr, 2 * Math.Sqrt(startAcc * (1 - startAcc) / images) + 1.0 / images);

    public Result Run(DefenseContext context)
    {
        var observer = context.Observer;
        var start = Validation.Score(Model);
        var asrBound = start.Asr is not null ? context.MaxValidationAsr : null;
        var tolerance = AccTolerance(start.Acc, Validation.Clean.Count);
        bool MeetsAsrBound(ValidationScores s) => asrBound is { } bound && s.Asr is { } asr && asr <= bound && start.Acc - s.Acc <= tolerance + 1e-9;
        var points = new List<TrajectoryPoint> { Point(0, start, "before fine-tuning") };
        observer.Point(points[0]);
        var scores = new List<ValidationScores>();
        var loop = new TrainingLoop
        {
            Model = Model,
            Data = Train,
            Options = Options,
            Loss = Loss,
            BeforeStep = BeforeStep,
            AfterStep = AfterStep,
            // Lower is better; the tiny epoch term makes a tie in ACC go to the later epoch (ACC steps are ≥ 1/|val| ≫ 1e-9).
            // With an ASR bound, every epoch that meets it (score ≤ −2) beats every epoch that does not (score ≥ −1).
            Validate = () =>
            {
                var s = Validation.Score(Model);
                scores.Add(s);
                return (MeetsAsrBound(s) ? -2 : 0) - s.Acc - 1e-9 * scores.Count;
            },
            // The loop restores the best epoch's state when patience is set; an unreachable patience never stops early.
            Patience = KeepBest ? int.MaxValue : null,
            OnEpoch = epoch =>
            {
                var point = Point(epoch.Epoch + 1, scores[^1], $"train loss {epoch.Loss:0.####}, lr {epoch.LearningRate:0.#####}");
                points.Add(point);
                observer.Point(point);
                observer.Progress((epoch.Epoch + 1.0) / Options.Epochs,
                    $"{Phase} epoch {epoch.Epoch + 1}: val ACC {scores[^1].Acc:P1}" + (scores[^1].Asr is { } a ? $", val ASR {a:P1}" : string.Empty));
            },
        };
        var history = loop.Run(context.Random, context.Cancellation);
        var chosen = KeepBest ? history.Last(e => e.Improved).Epoch : history.Count - 1;
        var rule = !KeepBest ? $"last {Phase} epoch ({history.Count}), as the reference"
            : asrBound is { } b && scores[chosen].Asr is { } chosenAsr
                ? MeetsAsrBound(scores[chosen])
                    ? $"epoch {chosen + 1} of {history.Count}: highest validation ACC ({scores[chosen].Acc * 100:0.0}%) among the {Phase} epochs whose validation ASR is at most {b * 100:0.##}% ({chosenAsr * 100:0.0}%) within {tolerance * 100:0.#} points of the starting model's ACC ({start.Acc * 100:0.0}%)"
                    : $"epoch {chosen + 1} of {history.Count}: no {Phase} epoch brings validation ASR to {b * 100:0.##}% within {tolerance * 100:0.#} points of the starting ACC (this one: ASR {chosenAsr * 100:0.0}%), so the highest validation ACC ({scores[chosen].Acc * 100:0.0}%) among the {Phase} epochs (ties → later epoch)"
                : $"epoch {chosen + 1} of {history.Count}: highest validation ACC ({scores[chosen].Acc * 100:0.0}%) among the {Phase} epochs (ties → later epoch)";
        return new Result(points, chosen + 1, scores[chosen], rule, history.Count);
    }

    private TrajectoryPoint Point(int epoch, ValidationScores s, string note) =>
        new(epoch, $"{Phase} epoch", s.Acc, s.Asr, s.Ra, s.CleanLoss, note, Phase);
}
