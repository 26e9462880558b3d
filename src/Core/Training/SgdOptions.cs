namespace WebDefense.Core.Training;

/// <summary>How the learning rate changes per epoch.</summary>
public abstract record LearningRateSchedule
{
    public static LearningRateSchedule Constant { get; } = new ConstantSchedule();

    /// <summary>CosineAnnealingLR(T_max) stepped once per epoch (BackdoorBench's default, T_max = 100).</summary>
    public static LearningRateSchedule Cosine(int tMax) => new CosineSchedule(tMax);

    /// <summary>MultiStepLR(milestones, gamma) stepped once per epoch (RNP's unlearning uses [10, 20], 0.1).</summary>
    public static LearningRateSchedule MultiStep(int[] milestones, double gamma) => new MultiStepSchedule(milestones, gamma);

    public abstract double At(double baseRate, int epoch);

    private sealed record ConstantSchedule : LearningRateSchedule
    {
        public override double At(double baseRate, int epoch) => baseRate;
    }

    private sealed record CosineSchedule(int TMax) : LearningRateSchedule
    {
        public override double At(double baseRate, int epoch) => baseRate * (1 + Math.Cos(Math.PI * epoch / TMax)) / 2;
    }

    private sealed record MultiStepSchedule(int[] Milestones, double Gamma) : LearningRateSchedule
    {
        public override double At(double baseRate, int epoch) => baseRate * Math.Pow(Gamma, Milestones.Count(m => m <= epoch));
    }
}

/// <summary>SGD with momentum and weight decay over mini-batches, as BackdoorBench's trainers use it.</summary>
public sealed record SgdOptions
{
    public double LearningRate { get; init; } = 0.01;
    public double Momentum { get; init; } = 0.9;
    public double WeightDecay { get; init; } = 5e-4;
    public int BatchSize { get; init; } = 128;
    public int Epochs { get; init; } = 10;
    /// <summary>Drop the last, smaller batch of an epoch; false by default, as PyTorch's DataLoader.</summary>
    public bool DropLast { get; init; }
    public LearningRateSchedule Schedule { get; init; } = LearningRateSchedule.Constant;
    public Augmentation Augment { get; init; } = Augmentation.None;
}
