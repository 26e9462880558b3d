using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using WebDefense.Core.Data;
using WebDefense.Core.Data.Triggers;
using WebDefense.Core.Defenses;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Server.Data;

namespace WebDefense.Server.Features.Runs;

/// <summary>Checks a run request against the team's models and data sets before anything is queued.</summary>
public static class RunValidation
{
    public static async Task<(Dictionary<string, string[]> Errors, string? TriggerJson)> ValidateAsync(StartRunRequest request, Guid team, AppDbContext db, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        var defense = DefenseCatalog.Find(request.Defense ?? "");
        if (defense is null) errors["defense"] = [$"unknown defense; available: {string.Join(", ", DefenseCatalog.All.Select(d => d.Name))}"];
        else
        {
            try
            {
                DefenseParameters.Resolve(defense.Parameters, request.Parameters?.ToDictionary(p => p.Key, p => (object)p.Value));
            }
            catch (DefenseParameterException e)
            {
                foreach (var (name, message) in e.Errors) errors[$"parameters.{name}"] = [message];
            }
        }

        var model = await db.Models.AsNoTracking().FirstOrDefaultAsync(m => m.Id == request.ModelId && m.TeamId == team, ct);
        if (model is null) errors["modelId"] = ["no such model"];

        async Task<DatasetRecord?> Dataset(Guid? id, string field, bool required)
        {
            if (id is null)
            {
                if (required) errors[field] = ["required"];
                return null;
            }

            var d = await db.Datasets.AsNoTracking().FirstOrDefaultAsync(x => x.Id == id && x.TeamId == team, ct);
            if (d is null) errors[field] = ["no such data set"];
            else if (model is not null && (d.Channels != model.Channels || d.Height != model.Height || d.Width != model.Width))
            {
                errors[field] = [$"images are {d.Channels}×{d.Height}×{d.Width} but the model expects {model.Channels}×{model.Height}×{model.Width}"];
            }
            else if (model is not null && d.MaxLabel >= model.NumClasses)
            {
                errors[field] = [$"holds label {d.MaxLabel} but the model has {model.NumClasses} classes"];
            }

            return d;
        }

        // Data-free defenses (CLP) run without clean data; when given, it only scores their sweep.
        await Dataset(request.CleanDatasetId == Guid.Empty ? null : request.CleanDatasetId, "cleanDatasetId",
            required: defense is null || defense.Needs.HasFlag(DefenseNeeds.CleanData));
        var test = await Dataset(request.TestDatasetId, "testDatasetId", required: false);
        var backdoorTest = await Dataset(request.BackdoorTestDatasetId, "backdoorTestDatasetId", required: false);
        var samples = await Dataset(request.BackdoorSamplesDatasetId, "backdoorSamplesDatasetId", required: false);

        string? triggerJson = null;
        if (request.Trigger is { ValueKind: not JsonValueKind.Null and not JsonValueKind.Undefined } trigger)
        {
            triggerJson = trigger.ValueKind == JsonValueKind.String ? trigger.GetString() : trigger.GetRawText();
            try
            {
                var spec = TriggerSpec.FromJson(triggerJson!);
                if (model is not null) spec.Validate(model.Channels, model.Height, model.Width);
                triggerJson = spec.ToJson();
            }
            catch (Exception e) when (e is InvalidTriggerException or JsonException or ArgumentException)
            {
                errors["trigger"] = [e.Message];
            }
        }

        if (defense is not null && defense.Needs.HasFlag(DefenseNeeds.BackdoorSamples) && triggerJson is null && request.BackdoorSamplesDatasetId is null)
        {
            errors["backdoorSamplesDatasetId"] = [$"{defense.Name} needs backdoor samples: give a trigger or a backdoor-samples data set"];
        }

        if (defense is not null && defense.Needs.HasFlag(DefenseNeeds.PoisonedTrainingSet))
        {
            errors["defense"] = [$"{defense.Name} needs a poisoned training set, which runs do not take yet"];
        }

        if (request.TargetLabel is { } target && model is not null && (target < 0 || target >= model.NumClasses))
        {
            errors["targetLabel"] = [$"must lie in [0, {model.NumClasses})"];
        }

        if ((backdoorTest is not null || (triggerJson is not null && test is not null)) && request.TargetLabel is null)
        {
            errors["targetLabel"] = ["required to measure the attack success rate"];
        }

        if (backdoorTest is not null && test is null) errors["testDatasetId"] = ["a backdoor test set needs the clean test set too"];
        if (request.Seeds is { Length: > 100 }) errors["seeds"] = ["at most 100 seeds per batch"];
        _ = samples;
        return (errors, triggerJson);
    }
}
