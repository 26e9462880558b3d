using System.Globalization;
using Microsoft.AspNetCore.Components;
using MudBlazor;
using WebDefense.Client.Api;
using WebDefense.Client.Components;

namespace WebDefense.Client.Pages;

/// <summary>
/// Starts a run: either purify a suspect model with a post-training defense (model → data → defense → start), or train
/// a robust model from a poisoned training set with a training-time defense (training set → evaluation → defense → start).
/// </summary>
public partial class NewRun
{
    private enum Goal { Purify, Train }

    private static readonly string[] DataFields = ["cleanDatasetId", "testDatasetId", "backdoorTestDatasetId", "backdoorSamplesDatasetId", "trigger", "targetLabel"];
    private static readonly string[] TrainingSetFields = ["poisonedTrainDatasetId", "architecture", "numClasses", "modelId"];
    private static readonly string[] EvaluationFields = ["testDatasetId", "backdoorTestDatasetId", "trigger", "targetLabel"];
    private static readonly string[] DefenseFields = ["defense", "seeds"];

    /// <summary>Both steppers end on step 3, whose own button starts the run.</summary>
    private const int LastStep = 3;

    [SupplyParameterFromQuery] public Guid? ModelId { get; set; }

    private Goal _goal = Goal.Purify;
    private DefenseInfo[]? _defenses;
    private List<ModelInfo> _models = [];
    private List<DatasetInfo> _datasets = [];
    private ArchitectureInfo[] _architectureInfos = [];
    private string[] _architectures = [];
    private string? _loadError;
    private int _step;

    // Purify a suspect model
    private Guid? _modelId;
    private Guid? _cleanId, _samplesId;

    // Train from a poisoned training set
    private Guid? _poisonedId;
    private string? _architecture;
    private int? _numClasses;

    // Both
    private Guid? _testId, _backdoorTestId;
    private int? _targetLabel;
    private string _backdoorSource = "none";
    private readonly TriggerDesign _trigger = new();
    private string _defenseName = "grad-prune";
    private ParameterValues? _values;
    private string _seeds = "0";

    private IReadOnlyDictionary<string, string[]>? _errors;
    private string? _startError;
    private bool _starting;

    private ModelInfo? Model => _models.FirstOrDefault(m => m.Id == _modelId);
    private DefenseInfo? Defense => _defenses?.FirstOrDefault(d => d.Name == _defenseName);
    private DatasetInfo? PoisonedSet => _datasets.FirstOrDefault(d => d.Id == _poisonedId);

    /// <summary>The defenses of the chosen goal: post-training ones purify a model, training-time ones train from a poisoned set.</summary>
    private IEnumerable<DefenseInfo> OfferedDefenses => (_defenses ?? []).Where(d => d.IsTrainingTime == (_goal == Goal.Train));

    private int PreviewCount => _datasets.FirstOrDefault(d => d.Id == (_cleanId ?? _testId))?.Count ?? 1;
    private int TrainingPreviewCount => _datasets.FirstOrDefault(d => d.Id == (_poisonedId ?? _testId))?.Count ?? 1;

    /// <summary>The class count the server will use: the one given, else the training set's largest label + 1.</summary>
    private int? ClassCount => _numClasses ?? (PoisonedSet is { Classes.Length: > 0 } set ? (int)set.Classes.Max() + 1 : null);

    private string NumClassesHelp => PoisonedSet is { Classes.Length: > 0 } set
        ? $"empty: the training set's largest label + 1 = {set.Classes.Max() + 1}"
        : "empty: the training set's largest label + 1";

    private bool DataHasError => DataFields.Any(f => Error(f) is not null);
    private bool TrainingSetHasError => TrainingSetFields.Any(f => Error(f) is not null);
    private bool EvaluationHasError => EvaluationFields.Any(f => Error(f) is not null);
    /// <summary>The Defense step is marked while the server's last answer names one of its fields, or while a value is invalid now.</summary>
    private bool DefenseHasError => Error("defense") is not null || Error("seeds") is not null
        || (_errors?.Keys.Any(k => k.StartsWith("parameters.", StringComparison.Ordinal)) ?? false)
        || _values?.IsValid == false || ParseSeeds(out _) is null;

    private string? Error(string field) => _errors?.FirstOrDefault(e => string.Equals(e.Key, field, StringComparison.OrdinalIgnoreCase)).Value?.FirstOrDefault();

    protected override async Task OnInitializedAsync()
    {
        try
        {
            var defenses = Api.DefensesAsync();
            var models = Api.ModelsAsync();
            var datasets = Api.DatasetsAsync();
            var architectures = Api.ArchitecturesAsync();
            _defenses = await defenses;
            _models = (await models).ToList();
            _datasets = (await datasets).ToList();
            _architectureInfos = await architectures;
            _architectures = _architectureInfos.Select(a => a.Name).ToArray();
        }
        catch (ApiException e)
        {
            _loadError = e.Message;
            return;
        }

        _modelId = ModelId is { } requested && _models.Any(m => m.Id == requested) ? requested : _models.FirstOrDefault()?.Id;
        // Pre-select the newest set of each kind: the demo's sets when nothing else was uploaded.
        _cleanId = _datasets.FirstOrDefault(d => d.Kind == DatasetKinds.Clean)?.Id;
        _testId = _datasets.FirstOrDefault(d => d.Kind == DatasetKinds.Test)?.Id;
        _backdoorTestId = _datasets.FirstOrDefault(d => d.Kind == DatasetKinds.BackdoorTest)?.Id;
        _poisonedId = _datasets.FirstOrDefault(d => d.Kind == DatasetKinds.PoisonedTrain)?.Id;
        // The zoo's small CNN fits 28×28 grey sets (the demo's); anything else waits for the user's choice.
        var poisoned = _datasets.FirstOrDefault(d => d.Id == _poisonedId);
        _architecture = poisoned is { Shape: [1, 28, 28] } && _architectures.Contains("smallcnn") ? "smallcnn" : null;
        _targetLabel = _backdoorTestId is null ? null : 0;
        DefenseChosen(OfferedDefenses.FirstOrDefault()?.Name ?? "");
    }

    private void GoalChosen(Goal goal)
    {
        if (goal == _goal) return;
        _goal = goal;
        _step = 0;
        _errors = null;
        _startError = null;
        if (goal == Goal.Train && _backdoorSource == "samples") _backdoorSource = "trigger";
        DefenseChosen(OfferedDefenses.FirstOrDefault()?.Name ?? "");
    }

    private void ModelChosen(Guid? id)
    {
        if (id == _modelId) return;
        _modelId = id;
        AdaptToModel();
    }

    /// <summary>
    /// Another model than the preselected one: data sets of another input shape, or with labels beyond its classes, give way
    /// to the newest set of each kind that fits (or none), and the target label is the user's to give (0 is the demo's).
    /// </summary>
    private void AdaptToModel()
    {
        if (_models.FirstOrDefault(m => m.Id == _modelId) is not { } model) return;
        bool Fits(DatasetInfo d) => d.Shape.SequenceEqual(model.InputShape) && d.Classes.All(c => c >= 0 && c < model.NumClasses);
        Guid? Fit(Guid? current, string kind) =>
            _datasets.FirstOrDefault(d => d.Id == current) is { } chosen && Fits(chosen) ? current : _datasets.FirstOrDefault(d => d.Kind == kind && Fits(d))?.Id;
        _cleanId = Fit(_cleanId, DatasetKinds.Clean);
        _testId = Fit(_testId, DatasetKinds.Test);
        _backdoorTestId = Fit(_backdoorTestId, DatasetKinds.BackdoorTest);
        _targetLabel = null;
    }

    private void SeedsChanged(string? seeds)
    {
        _seeds = seeds ?? "";
        FieldEdited("seeds");
    }

    /// <summary>An edited field's message from the last check goes; the field's own validation speaks for it from now on.</summary>
    private void FieldEdited(string field)
    {
        var key = field == "seeds" ? field : $"parameters.{field}";
        if (_errors is null || !_errors.Keys.Any(k => string.Equals(k, key, StringComparison.OrdinalIgnoreCase))) return;
        _errors = _errors.Where(kv => !string.Equals(kv.Key, key, StringComparison.OrdinalIgnoreCase))
            .ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.OrdinalIgnoreCase);
    }

    private void ModelUploaded(ModelInfo model)
    {
        _models.Insert(0, model);
        _modelId = model.Id;
        AdaptToModel();
    }

    private void DefenseChosen(string name)
    {
        _defenseName = name;
        _values = Defense is { } d ? new ParameterValues(d.Parameters) : null;
        if (Defense?.NeedsBackdoorSamples == true && _backdoorSource == "none") _backdoorSource = "trigger";
    }

    private string Name(Guid? id) => id is null ? "–" : _datasets.FirstOrDefault(d => d.Id == id)?.Name ?? Format.Short(id.Value);

    /// <summary>The seed field's own check as the user types (MudBlazor's validation would otherwise clear the mark on blur).</summary>
    private Func<string?, string?> SeedsValidation => text =>
    {
        ParseSeeds(text ?? "", out var error);
        return error;
    };

    private int[]? ParseSeeds(out string? error) => ParseSeeds(_seeds, out error);

    private static int[]? ParseSeeds(string text, out string? error)
    {
        error = null;
        var parts = text.Split([',', ' ', ';'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var seeds = new List<int>();
        foreach (var p in parts)
        {
            if (!int.TryParse(p, NumberStyles.Integer, CultureInfo.InvariantCulture, out var s) || s < 0)
            {
                error = $"'{p}' is not a seed (whole numbers ≥ 0)";
                return null;
            }

            seeds.Add(s);
        }

        if (seeds.Count == 0) error = "give at least one seed";
        return error is null ? seeds.ToArray() : null;
    }

    /// <summary>
    /// Next asks the stepper to complete the current step: refused while a field of that step is invalid, with the
    /// messages put next to their fields. Going back is always allowed.
    /// </summary>
    private Task StepRequestedAsync(StepperInteractionEventArgs e)
    {
        if (e.Action != StepAction.Complete) return Task.CompletedTask;
        if (e.StepIndex >= LastStep)
        {
            e.Cancel = true;   // the last step is completed by starting the run
            return Task.CompletedTask;
        }

        // This step's messages are replaced by what the page finds now; other steps' messages (from the server) stay.
        var errors = (_errors ?? new Dictionary<string, string[]>())
            .Where(kv => !BelongsToStep(kv.Key, e.StepIndex))
            .ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.OrdinalIgnoreCase);
        var stepErrors = ClientErrors(e.StepIndex);
        foreach (var (field, messages) in stepErrors) errors[field] = messages;
        _errors = errors;
        if (stepErrors.Count > 0) e.Cancel = true;
        return Task.CompletedTask;
    }

    private bool BelongsToStep(string field, int step) => step switch
    {
        0 => (_goal == Goal.Train ? TrainingSetFields : ["modelId"]).Contains(field, StringComparer.OrdinalIgnoreCase),
        1 => (_goal == Goal.Train ? EvaluationFields : DataFields).Contains(field, StringComparer.OrdinalIgnoreCase),
        2 => DefenseFields.Contains(field, StringComparer.OrdinalIgnoreCase) || field.StartsWith("parameters.", StringComparison.OrdinalIgnoreCase),
        _ => false,
    };

    /// <summary>What the page can check itself before asking the server, for one step (the server checks again).</summary>
    private Dictionary<string, string[]> ClientErrors(int step)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.OrdinalIgnoreCase);
        if (step == 0)
        {
            if (_goal == Goal.Purify && _modelId is null) errors["modelId"] = ["choose or upload a model"];
            if (_goal == Goal.Train && _poisonedId is null) errors["poisonedTrainDatasetId"] = ["choose or upload a poisoned training set"];
            if (_goal == Goal.Train && string.IsNullOrEmpty(_architecture)) errors["architecture"] = ["choose an architecture"];
        }
        else if (step == 2)
        {
            ParseSeeds(out var seedError);
            if (seedError is not null) errors["seeds"] = [seedError];
            foreach (var p in _values?.Schema ?? []) if (_values!.Error(p) is { } e) errors[$"parameters.{p.Name}"] = [e];
        }

        return errors;
    }

    private async Task StartAsync()
    {
        _startError = null;
        var seeds = ParseSeeds(out _);
        var errors = new Dictionary<string, string[]>(StringComparer.OrdinalIgnoreCase);
        foreach (var step in new[] { 0, 2 }) foreach (var (field, messages) in ClientErrors(step)) errors[field] = messages;
        if (seeds is null || _values is null || errors.Count > 0)
        {
            _errors = errors;
            _startError = "Fix the marked fields first.";
            _step = errors.Keys.Any(k => BelongsToStep(k, 0)) ? 0 : 2;
            return;
        }

        _starting = true;
        try
        {
            var trigger = _backdoorSource == "trigger" ? _trigger.ToElement() : (System.Text.Json.JsonElement?)null;
            int? seed = seeds.Length == 1 ? seeds[0] : null;
            var batch = seeds.Length > 1 ? seeds : null;
            var request = _goal == Goal.Train
                ? new StartRunRequest(
                    ModelId: null, Defense: _defenseName, Parameters: _values.Overrides(), CleanDatasetId: null, TestDatasetId: _testId,
                    BackdoorTestDatasetId: _backdoorTestId, Trigger: trigger, BackdoorSamplesDatasetId: null, TargetLabel: _targetLabel,
                    Seed: seed, Seeds: batch, PoisonedTrainDatasetId: _poisonedId, Architecture: _architecture, NumClasses: _numClasses)
                : new StartRunRequest(
                    _modelId, _defenseName, _values.Overrides(), _cleanId, _testId, _backdoorTestId, trigger,
                    _backdoorSource == "samples" ? _samplesId : null, _targetLabel, seed, batch);
            var started = await Api.StartRunAsync(request);
            Nav.NavigateTo($"runs/{started.RunIds[0]}");
        }
        catch (ApiException e)
        {
            _errors = e.FieldErrors;
            _startError = e.Message;
            // Go back to the first step that has a problem, so the message sits next to its field.
            if (_goal == Goal.Train)
            {
                _step = TrainingSetHasError ? 0 : EvaluationHasError ? 1 : _errors.Count > 0 ? 2 : _step;
            }
            else if (Error("modelId") is not null) _step = 0;
            else if (DataHasError) _step = 1;
            else if (_errors.Count > 0) _step = 2;
        }
        finally
        {
            _starting = false;
        }
    }
}
