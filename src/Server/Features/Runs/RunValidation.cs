using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using WebDefense.Core.Data;
using WebDefense.Core.Data.Triggers;
using WebDefense.Core.Defenses;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Models.Zoo;
using WebDefense.Core.Scanning;
using WebDefense.Server.Features.Datasets;
using WebDefense.Server.Data;

namespace WebDefense.Server.Features.Runs;

/// <summary>
/// The outcome of <see cref="RunValidation.ValidateAsync"/>: the field errors, the normalised trigger and, for a valid
/// training-time request, the zoo's spelling of its architecture and its class count (given, or the largest label + 1).
/// </summary>
public sealed record RunValidationResult(Dictionary<string, string[]> Errors, string? TriggerJson, string? Architecture, int? NumClasses);

/// <summary>Checks a run request against the team's models and data sets before anything is queued.</summary>
public static class RunValidation
{
    /// <summary>
    /// What the run's images must match: the model's input and classes, or a training-time run's training set (then
    /// with the architecture to train).
    /// </summary>
    private sealed record Target(int Channels, int Height, int Width, int NumClasses, string What, string? Architecture = null);

    public static async Task<RunValidationResult> ValidateAsync(StartRunRequest request, Guid team, AppDbContext db, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        var trainingTime = DefenseCatalog.FindTrainingTime(request.Defense ?? "");
        var scan = DefenseCatalog.IsScan(request.Defense);
        IDefenseDescription? defense = (IDefenseDescription?)DefenseCatalog.Find(request.Defense ?? "") ?? (IDefenseDescription?)trainingTime
            ?? (scan ? DefenseCatalog.Scan : null);
        DefenseParameters? resolved = null;
        if (defense is null)
        {
            var names = DefenseCatalog.All.Select(d => d.Name).Concat(DefenseCatalog.TrainingTime.Select(d => d.Name)).Append(DefenseCatalog.Scan.Name);
            errors["defense"] = [$"unknown defense; available: {string.Join(", ", names)}"];
        }
        else
        {
            try
            {
                resolved = DefenseParameters.Resolve(defense.Parameters, request.Parameters?.ToDictionary(p => p.Key, p => (object)p.Value));
            }
            catch (DefenseParameterException e)
            {
                foreach (var (name, message) in e.Errors) errors[$"parameters.{name}"] = [message];
            }
        }

        var target = trainingTime is not null
            ? await TrainingTargetAsync(request, trainingTime, team, db, errors, ct)
            : await ModelTargetAsync(request, team, db, errors, ct);

        async Task<DatasetRecord?> Dataset(Guid? id, string field, string kind, bool required)
        {
            if (id is null)
            {
                if (required) errors[field] = ["required"];
                return null;
            }

            var d = await db.Datasets.AsNoTracking().FirstOrDefaultAsync(x => x.Id == id && x.TeamId == team, ct);
            if (d is null) errors[field] = ["no such data set"];
            else if (d.Kind != kind)
            {
                // Each slot takes its own kind, so that a defense never trains or selects on the test sets.
                errors[field] = [$"is a {d.Kind} data set; {field} takes a data set of kind {kind} (choose one of that kind, or upload the images again with kind={kind})"];
            }
            else if (target is not null && (d.Channels != target.Channels || d.Height != target.Height || d.Width != target.Width))
            {
                errors[field] = [$"images are {d.Channels}×{d.Height}×{d.Width} but {target.What} {target.Channels}×{target.Height}×{target.Width}"];
            }
            else if (target is not null && d.MaxLabel >= target.NumClasses)
            {
                errors[field] = [$"holds label {d.MaxLabel} but the model has {target.NumClasses} classes"];
            }

            return d;
        }

        if (trainingTime is not null)
        {
            // A training-time defense trains from its poisoned training set: no model, clean data or backdoor samples.
            if (request.CleanDatasetId is { } c && c != Guid.Empty) errors["cleanDatasetId"] = [$"{trainingTime.Name} takes no clean data set: it trains from the poisoned training set"];
            if (request.BackdoorSamplesDatasetId is not null) errors["backdoorSamplesDatasetId"] = [$"{trainingTime.Name} takes no backdoor samples"];
        }
        else
        {
            // Data-free defenses (CLP) run without clean data; when given, it only scores their sweep.
            await Dataset(request.CleanDatasetId == Guid.Empty ? null : request.CleanDatasetId, "cleanDatasetId", DatasetKinds.Clean,
                required: defense is null || defense.Needs.HasFlag(DefenseNeeds.CleanData));
            if (request.PoisonedTrainDatasetId is not null) errors["poisonedTrainDatasetId"] = [$"{defense?.Name ?? "this defense"} purifies a model; a poisoned training set is for training-time defenses ({string.Join(", ", DefenseCatalog.TrainingTime.Select(d => d.Name))})"];
        }

        var test = await Dataset(request.TestDatasetId, "testDatasetId", DatasetKinds.Test, required: false);
        var backdoorTest = await Dataset(request.BackdoorTestDatasetId, "backdoorTestDatasetId", DatasetKinds.BackdoorTest, required: false);
        var samples = await Dataset(request.BackdoorSamplesDatasetId, "backdoorSamplesDatasetId", DatasetKinds.BackdoorSamples, required: false);

        string? triggerJson = null;
        if (request.Trigger is { ValueKind: not JsonValueKind.Null and not JsonValueKind.Undefined } trigger)
        {
            triggerJson = trigger.ValueKind == JsonValueKind.String ? trigger.GetString() : trigger.GetRawText();
            try
            {
                var spec = TriggerSpec.FromJson(triggerJson!);
                if (target is not null) spec.Validate(target.Channels, target.Height, target.Width);
                triggerJson = spec.ToJson();
            }
            catch (Exception e) when (e is InvalidTriggerException or JsonException or ArgumentException)
            {
                errors["trigger"] = [e.Message];
            }
        }

        if (defense is not null && defense.Needs.HasFlag(DefenseNeeds.BackdoorSamples) && triggerJson is null && request.BackdoorSamplesDatasetId is null
            && !(resolved is not null && ScanAssistance.Enabled(resolved)))
        {
            errors["backdoorSamplesDatasetId"] = [$"{defense.Name} needs backdoor samples: give a trigger or a backdoor-samples data set, or leave the scan parameter on to rebuild the trigger from the clean data"];
        }

        if (scan)
        {
            if (request.BackdoorSamplesDatasetId is not null) errors["backdoorSamplesDatasetId"] = ["the scan takes no backdoor samples: it rebuilds the trigger from the clean data"];
            if (target is { NumClasses: < 3 }) errors["modelId"] = ["the scan compares the labels' trigger sizes and needs a model with at least 3 classes"];
        }

        if (request.TargetLabel is { } label && target is not null && (label < 0 || label >= target.NumClasses))
        {
            errors["targetLabel"] = [$"must lie in [0, {target.NumClasses})"];
        }

        if ((backdoorTest is not null || (triggerJson is not null && test is not null)) && request.TargetLabel is null)
        {
            errors["targetLabel"] = ["required to measure the attack success rate"];
        }

        if (backdoorTest is not null && test is null) errors["testDatasetId"] = ["a backdoor test set needs the clean test set too"];
        if (request.Seeds is { Length: > 100 }) errors["seeds"] = ["at most 100 seeds per batch"];
        _ = samples;
        return new RunValidationResult(errors, triggerJson, target?.Architecture, target?.Architecture is null ? null : target.NumClasses);
    }

    private static async Task<Target?> ModelTargetAsync(StartRunRequest request, Guid team, AppDbContext db, Dictionary<string, string[]> errors, CancellationToken ct)
    {
        if (request.Architecture is not null) errors["architecture"] = ["only training-time defenses take an architecture; a post-training defense uses the uploaded model's"];
        if (request.NumClasses is not null) errors["numClasses"] = ["only training-time defenses take a class count"];
        var model = request.ModelId is { } id ? await db.Models.AsNoTracking().FirstOrDefaultAsync(m => m.Id == id && m.TeamId == team, ct) : null;
        if (model is null)
        {
            errors["modelId"] = [request.ModelId is null ? "required" : "no such model"];
            return null;
        }

        return new Target(model.Channels, model.Height, model.Width, model.NumClasses, "the model expects");
    }

    /// <summary>A training-time run: no model; a poisoned-train data set, a zoo architecture and the class count (default: the largest label + 1).</summary>
    private static async Task<Target?> TrainingTargetAsync(
        StartRunRequest request, ITrainingDefense defense, Guid team, AppDbContext db, Dictionary<string, string[]> errors, CancellationToken ct)
    {
        if (request.ModelId is not null) errors["modelId"] = [$"{defense.Name} trains a new model from the poisoned training set; it takes an architecture, not a model"];
        var architecture = ModelZoo.NameOf(request.Architecture);
        if (string.IsNullOrWhiteSpace(request.Architecture))
        {
            errors["architecture"] = [$"required: one of {string.Join(", ", ModelZoo.Names.Select(n => n.Name))}"];
        }
        else if (architecture is null)
        {
            errors["architecture"] = [$"unknown architecture; one of {string.Join(", ", ModelZoo.Names.Select(n => n.Name))}"];
        }

        if (request.PoisonedTrainDatasetId is not { } trainId)
        {
            errors["poisonedTrainDatasetId"] = [$"required: {defense.Name} trains from an untrusted training set (a data set of kind {DatasetKinds.PoisonedTrain})"];
            return null;
        }

        var train = await db.Datasets.AsNoTracking().FirstOrDefaultAsync(d => d.Id == trainId && d.TeamId == team, ct);
        if (train is null)
        {
            errors["poisonedTrainDatasetId"] = ["no such data set"];
            return null;
        }

        if (train.Kind != DatasetKinds.PoisonedTrain)
        {
            errors["poisonedTrainDatasetId"] = [$"is a {train.Kind} data set; upload the training set with kind {DatasetKinds.PoisonedTrain}"];
            return null;
        }

        var classes = request.NumClasses ?? train.MaxLabel + 1;
        if (classes < 2 || classes > MaxClasses)
        {
            errors["numClasses"] = [$"must lie in [2, {MaxClasses}]"];
            return null;
        }

        if (train.MaxLabel >= classes)
        {
            errors["numClasses"] = [$"the training set holds label {train.MaxLabel}; at least {train.MaxLabel + 1} classes are needed"];
            return null;
        }

        return new Target(train.Channels, train.Height, train.Width, classes, "the training set's images are", architecture);
    }

    private const int MaxClasses = 1000;
}
