using WebDefense.Core.Defenses.Framework;

namespace WebDefense.Core.Defenses;

/// <summary>Every defense the service offers, by its API name: post-training (<see cref="All"/>) and training-time (<see cref="TrainingTime"/>).</summary>
public static class DefenseCatalog
{
    public static IReadOnlyList<IDefense> All { get; } =
        [new GradPruneDefense(), new RnpDefense(), new TsbdDefense(), new FtDefense(), new FpDefense(), new NadDefense(), new ClpDefense(), new AnpDefense(), new FtSamDefense(), new NcDefense()];

    /// <summary>The training-time defenses: they train a model from an untrusted training set instead of purifying one.</summary>
    public static IReadOnlyList<ITrainingDefense> TrainingTime { get; } = [new AdvrBdDefense()];

    /// <summary>The backdoor scan: a run of its own kind ("scan"), and the first step of post-training runs without backdoor samples.</summary>
    public static Scanning.BackdoorScan Scan { get; } = new();

    public static bool IsScan(string? name) => string.Equals(name, Scan.Name, StringComparison.OrdinalIgnoreCase);

    public static ITrainingDefense? FindTrainingTime(string name) =>
        TrainingTime.FirstOrDefault(d => string.Equals(d.Name, name, StringComparison.OrdinalIgnoreCase));

    public static IDefense? Find(string name) => All.FirstOrDefault(d => string.Equals(d.Name, name, StringComparison.OrdinalIgnoreCase));

    public static IDefense Get(string name) => Find(name)
        ?? throw new DefenseInputException($"unknown defense '{name}'; available: {string.Join(", ", All.Select(d => d.Name))}");
}
