using System.Runtime.InteropServices;
using TorchSharp;
using WebDefense.Core.Data;
using WebDefense.Core.Models.Serialization;
using WebDefense.Core.Models.Zoo;
using static TorchSharp.torch;

namespace WebDefense.Core.Models;

/// <summary>
/// What the uploader says a model is. <see cref="Architecture"/> is a zoo name for state-dict formats and
/// null (or "torchscript") for TorchScript archives, which carry their own code.
/// </summary>
public sealed record ModelDeclaration(string? Architecture, int NumClasses, InputSpec Input);

/// <summary>
/// What an uploader may say about a model, all of it optional: what the file shows (architecture, classes, input
/// channels, and for TorchScript the image size it accepts) is found out; <paramref name="InputShape"/> is C,H,W;
/// <paramref name="Mean"/>/<paramref name="Std"/> hold one value per channel or one for all (default 0 and 1).
/// </summary>
public sealed record PartialDeclaration(string? Architecture = null, int? NumClasses = null, int[]? InputShape = null, float[]? Mean = null, float[]? Std = null);

/// <summary>A model file read, checked and ready for work, with its format and anything worth telling the user.</summary>
public sealed class LoadedModel(Classifier classifier, ModelFileFormat format, IReadOnlyList<string> warnings,
    CheckpointContents? contents = null, IReadOnlyList<string>? inferred = null) : IDisposable
{
    public Classifier Classifier { get; } = classifier;
    public ModelFileFormat Format { get; } = format;
    public IReadOnlyList<string> Warnings { get; } = warnings;

    /// <summary>What was unwrapped, stripped and ignored around the state dict (<see cref="CheckpointContents.Plain"/> otherwise).</summary>
    public CheckpointContents Contents { get; } = contents ?? CheckpointContents.Plain;

    /// <summary>What was found out rather than declared ("architecture wrn16_1: …", "10 classes from fc.weight" …).</summary>
    public IReadOnlyList<string> Inferred { get; } = inferred ?? [];

    /// <summary>The complete declaration the model was loaded with (zoo name or null for TorchScript, classes, input).</summary>
    public ModelDeclaration Declaration => new(Classifier.IsTorchScript ? null : Classifier.Architecture, Classifier.NumClasses, Classifier.Input);

    public long ParameterCount => Classifier.ParameterCount();

    public void Dispose() => Classifier.Dispose();
}

/// <summary>
/// Reads any supported model file with the restricted readers (nothing in a file is ever executed, except
/// TorchScript code by libtorch's interpreter, which is what that format is), then checks it against the
/// declaration before any work: missing and unexpected keys and shape mismatches are reported together in
/// one message, and a dry-run forward pass checks the input shape and the number of classes.
/// </summary>
public static class ModelLoader
{
    private const int ListedProblems = 8;

    /// <summary>Loads a model whose architecture, classes and input are all declared (a zoo name, or null for TorchScript).</summary>
    public static LoadedModel Load(string path, ModelDeclaration declaration, ModelReadLimits? limits = null)
    {
        declaration.Input.Validate();
        if (declaration.NumClasses < 1)
        {
            throw new ModelFileException($"the number of classes must be at least 1, got {declaration.NumClasses}");
        }

        var input = declaration.Input;
        return Load(path, new PartialDeclaration(declaration.Architecture, declaration.NumClasses, [input.Channels, input.Height, input.Width], input.Mean, input.Std), limits);
    }

    /// <summary>
    /// Loads a model from what the file shows plus whatever was declared: a weights-only file's architecture is
    /// matched against the zoo (<see cref="ArchitectureMatcher"/>), its classes and input channels read from the
    /// classifier and the first convolution; a TorchScript archive's are found by a probe forward pass. Declared values
    /// that contradict the file are an error; what was found out is listed in <see cref="LoadedModel.Inferred"/>.
    /// </summary>
    public static LoadedModel Load(string path, PartialDeclaration declaration, ModelReadLimits? limits = null)
    {
        if (declaration.InputShape is { Length: not 3 } || declaration.InputShape?.Any(d => d < 1) == true || declaration.NumClasses < 1)
        {
            throw new ModelFileException("the input shape needs three positive numbers C,H,W and the class count must be at least 1");
        }

        ModelFileFormat format;
        using (var probe = File.OpenRead(path))
        {
            format = ModelFormatDetector.Detect(probe);
        }

        var warnings = new List<string>();
        var inferred = new List<string>();
        var contents = CheckpointContents.Plain;
        Classifier classifier;
        if (format == ModelFileFormat.TorchScript)
        {
            classifier = LoadTorchScript(path, declaration, warnings, inferred);
        }
        else
        {
            using var state = ReadState(path, format, limits, out contents);
            classifier = LoadStateDict(state, declaration, warnings, inferred);
        }

        try
        {
            CheckForward(classifier);
            return new LoadedModel(classifier, format, warnings, contents, inferred);
        }
        catch
        {
            classifier.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Writes the model's current weights in <paramref name="format"/> (TorchScript only for TorchScript models; a
    /// legacy PyTorch upload is written back as a zip <c>torch.save</c> file, which every PyTorch ≥ 1.6 reads).
    /// </summary>
    public static void Save(Classifier model, ModelFileFormat format, string path)
    {
        if (format == ModelFileFormat.TorchScript)
        {
            if (model.Module is not jit.ScriptModule script)
            {
                throw new ModelFileException($"a native '{model.Architecture}' model cannot be written as TorchScript; use a state-dict format");
            }

            TorchScriptModel.Save(script, path);
            return;
        }

        using var state = StateDict.FromModule(model.Module);
        using var file = File.Create(path);
        switch (format)
        {
            case ModelFileFormat.PyTorchStateDict or ModelFileFormat.PyTorchLegacy:
                PyTorchCheckpoint.Write(state, file, Path.GetFileNameWithoutExtension(path) is { Length: > 0 } stem ? SafeArchiveName(stem) : "archive");
                break;
            case ModelFileFormat.Safetensors:
                Safetensors.Write(state, file);
                break;
            case ModelFileFormat.TorchSharp:
                TorchSharpStateFile.Write(state, file);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(format), format, null);
        }
    }

    /// <summary>The usual file extension of a format.</summary>
    public static string Extension(ModelFileFormat format) => format switch
    {
        ModelFileFormat.PyTorchStateDict or ModelFileFormat.PyTorchLegacy => ".pt",
        ModelFileFormat.Safetensors => ".safetensors",
        ModelFileFormat.TorchScript => ".ts.pt",
        ModelFileFormat.TorchSharp => ".dat",
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, null),
    };

    private static Classifier LoadTorchScript(string path, PartialDeclaration declaration, List<string> warnings, List<string> inferred)
    {
        if (declaration.Architecture is { } arch && !arch.Equals(Classifier.TorchScriptArchitecture, StringComparison.OrdinalIgnoreCase))
        {
            throw new ModelFileException($"the file is a TorchScript archive, which carries its own architecture; declare no architecture (or 'torchscript') instead of '{arch}'");
        }

        var module = TorchScriptModel.Load(path);
        try
        {
            if (TorchScriptModel.LooksTraced(path, module))
            {
                warnings.Add("the archive looks traced (torch.jit.trace): its batch-norm layers ignore train()/eval(), so defenses that fine-tune or unlearn will behave as in the mode it was traced in; export with torch.jit.script");
            }

            var channels = declaration.InputShape?[0] ?? StemChannels(module, inferred);
            var sizes = declaration.InputShape is [_, var declaredH, var declaredW] ? [(declaredH, declaredW)] : channels == 1 ? GreyProbeSizes : ProbeSizes;
            foreach (var (h, w) in sizes)
            {
                if (Probe(module, channels, h, w) is not { } classes)
                {
                    continue;
                }

                if (declaration.InputShape is null)
                {
                    inferred.Add($"input {channels}×{h}×{w}: the first of the usual image sizes ({string.Join(", ", sizes.Select(s => $"{s.Item1}×{s.Item2}"))}) the model accepts; give inputShape if your images differ");
                }

                if (declaration.NumClasses is { } declared && declared != classes)
                {
                    throw new ModelFileException($"the model outputs {classes} logits per image, but {declared} classes were declared");
                }

                if (declaration.NumClasses is null)
                {
                    inferred.Add($"{classes} classes from the output of a probe forward pass");
                }

                // Clones load the checked archive from memory and take this module's state (Classifier.Clone).
                var archive = File.ReadAllBytes(path);
                return new Classifier(module, Classifier.TorchScriptArchitecture, classes, MakeInput(channels, h, w, declaration),
                    () => TorchScriptModel.LoadChecked(archive));
            }

            // Nothing worked: run the check on the first size for its precise message.
            var (h0, w0) = sizes[0];
            using var fallback = new Classifier(module, Classifier.TorchScriptArchitecture, declaration.NumClasses ?? 1, MakeInput(channels, h0, w0, declaration));
            CheckForward(fallback);
            throw new ModelFileException($"the model accepts none of the inputs {channels}×(" + string.Join(", ", sizes.Select(s => $"{s.Item1}×{s.Item2}")) + "); give inputShape");
        }
        catch
        {
            module.Dispose();
            throw;
        }
    }

    private static readonly (int, int)[] ProbeSizes = [(32, 32), (28, 28), (64, 64), (96, 96), (224, 224)];
    private static readonly (int, int)[] GreyProbeSizes = [(28, 28), (32, 32), (64, 64), (96, 96), (224, 224)];

    /// <summary>Input channels of a TorchScript model: the second dimension of its first 4-D parameter.</summary>
    private static int StemChannels(nn.Module module, List<string> inferred)
    {
        foreach (var (name, p) in module.named_parameters())
        {
            if (p.dim() == 4)
            {
                inferred.Add($"{p.shape[1]} input channel(s) from {name} [{string.Join(',', p.shape)}]");
                return (int)p.shape[1];
            }
        }

        throw new ModelFileException("the model has no convolution to read its input channels from; give inputShape (C,H,W)");
    }

    /// <summary>The number of logits for a zero batch of C×H×W images, or null when the model refuses the shape.</summary>
    private static int? Probe(nn.Module module, int channels, int height, int width)
    {
        try
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            module.eval();
            var shape = ((nn.IModule<Tensor, Tensor>)module).call(zeros(2, channels, height, width)).shape;
            return shape is [2, var k] && k is >= 1 and <= 100_000 ? (int)k : null;
        }
        catch (Exception ex) when (ex is ExternalException or ArgumentException or InvalidOperationException)
        {
            return null;
        }
    }

    private static InputSpec MakeInput(int channels, int height, int width, PartialDeclaration declaration)
    {
        try
        {
            return InputSpec.Create(channels, height, width, PerChannel(declaration.Mean, channels, "mean"), PerChannel(declaration.Std, channels, "std"));
        }
        catch (ArgumentException e)
        {
            throw new ModelFileException(e.Message, e);
        }
    }

    private static float[]? PerChannel(float[]? values, int channels, string what) => values switch
    {
        null => null,
        { Length: 1 } => Enumerable.Repeat(values[0], channels).ToArray(),
        _ when values.Length == channels => values,
        _ => throw new ModelFileException($"{what} has {values.Length} values but the model has {channels} input channel(s); give one per channel or one for all"),
    };

    private static Classifier LoadStateDict(StateDict state, PartialDeclaration declaration, List<string> warnings, List<string> inferred)
    {
        // A declared architecture is checked alone (the worker reloads every run's model this way); the whole zoo is
        // matched only when nothing is declared or the declaration does not fit, for the message.
        var declaredName = ModelZoo.NameOf(declaration.Architecture);
        var fit = declaredName is null ? null : ArchitectureMatcher.Fit(state, declaredName);
        var match = fit is null ? ArchitectureMatcher.Match(state) : new ZooMatchResult(fit, [fit], null, []);
        string arch;
        int classes, channels;
        if (declaration.Architecture is { } declared)
        {
            arch = declaredName ?? throw new ModelFileException(
                $"unknown architecture '{declared}'; the zoo has {string.Join(", ", ModelZoo.Names.Select(n => n.Name))}" +
                (match.Match is { } m ? $", and the file fits '{m.Name}' (leave architecture out to use it)" : "") +
                $"; {ArchitectureMatcher.TorchScriptHint}");
            classes = declaration.NumClasses ?? fit?.NumClasses ?? HeadRows(state) ?? 10;
            channels = declaration.InputShape?[0] ?? fit?.InChannels ?? StemColumns(state) ?? 3;
        }
        else
        {
            var m = match.Match ?? throw new ModelFileException(ArchitectureMatcher.Explain(match));
            arch = m.Name;
            classes = m.NumClasses;
            channels = m.InChannels;
            inferred.Add($"architecture {arch}: the file's keys and shapes fit it and no other zoo entry");
            if (declaration.NumClasses is { } n && n != classes)
            {
                throw new ModelFileException($"the file's classifier ({m.HeadKey}) has {classes} outputs but {n} classes were declared");
            }

            if (declaration.InputShape is [var c, ..] && c != channels)
            {
                throw new ModelFileException($"the file's first convolution ({m.StemKey}) takes {channels} input channel(s) but the input shape declares {c}");
            }

            if (declaration.NumClasses is null) inferred.Add($"{classes} classes from {m.HeadKey}");
            if (declaration.InputShape is null) inferred.Add($"{channels} input channel(s) from {m.StemKey}");
        }

        int height, width;
        if (declaration.InputShape is [_, var h, var w])
        {
            (height, width) = (h, w);
        }
        else if (ModelZoo.Names.First(n => n.Name == arch).InputSize is { } size)
        {
            (height, width) = (size, size);
            inferred.Add($"input {size}×{size}, the size {arch} is made for; give inputShape if your images differ");
        }
        else
        {
            throw new ModelFileException($"'{arch}' takes images of any size, so the input shape (C,H,W) is needed, e.g. {channels},32,32");
        }

        var classifier = ModelZoo.CreateClassifier(arch, classes, MakeInput(channels, height, width, declaration));
        try
        {
            Import(state, classifier, warnings);
            classifier.Module.eval();
            return classifier;
        }
        catch (ModelFileException e) when (declaration.Architecture is not null)
        {
            classifier.Dispose();
            var hint = match.Match is { } m && m.Name != arch ? $" The file fits '{m.Name}': leave architecture out to use it." : $" Otherwise {ArchitectureMatcher.TorchScriptHint}.";
            throw new ModelFileException(e.Message + hint, e);
        }
        catch
        {
            classifier.Dispose();
            throw;
        }
    }

    private static int? HeadRows(StateDict state) => state.Entries.LastOrDefault(kv => kv.Value.dim() == 2).Value is { } t ? (int)t.shape[0] : null;

    private static int? StemColumns(StateDict state) => state.Entries.FirstOrDefault(kv => kv.Value.dim() == 4).Value is { } t ? (int)t.shape[1] : null;

    private static StateDict ReadState(string path, ModelFileFormat format, ModelReadLimits? limits, out CheckpointContents contents)
    {
        using var file = File.OpenRead(path);
        contents = CheckpointContents.Plain;
        return format switch
        {
            ModelFileFormat.PyTorchStateDict or ModelFileFormat.PyTorchLegacy => PyTorchCheckpoint.Read(file, out contents, limits),
            ModelFileFormat.Safetensors => Safetensors.Read(file, limits),
            ModelFileFormat.TorchSharp => TorchSharpStateFile.Read(file, limits),
            _ => throw new ArgumentOutOfRangeException(nameof(format), format, null),
        };
    }

    /// <summary>Copies the file's tensors into the model key for key, after checking names, shapes and dtypes all at once.</summary>
    private static void Import(StateDict state, Classifier model, List<string> warnings)
    {
        var expected = model.Module.state_dict();
        var missing = expected.Keys.Where(k => !state.ContainsKey(k) && !k.EndsWith("num_batches_tracked", StringComparison.Ordinal)).ToList();
        var unexpected = state.Keys.Where(k => !expected.ContainsKey(k)).ToList();
        var shapes = expected.Where(e => state.TryGetValue(e.Key, out var t) && !t.shape.SequenceEqual(e.Value.shape))
            .Select(e => $"{e.Key}: file [{string.Join(',', state[e.Key].shape)}], model [{string.Join(',', e.Value.shape)}]").ToList();
        var problems = new List<string>();
        if (missing.Count > 0) problems.Add($"{missing.Count} missing key(s): {List(missing)}");
        if (unexpected.Count > 0) problems.Add($"{unexpected.Count} unexpected key(s): {List(unexpected)}");
        if (shapes.Count > 0) problems.Add($"{shapes.Count} shape mismatch(es): {List(shapes)}");
        if (problems.Count > 0)
        {
            var hint = shapes.Any(s => s.Contains("weight", StringComparison.Ordinal)) && HeadMismatch(expected, state, out var fileClasses)
                ? $" The file's classifier head has {fileClasses} outputs but {model.NumClasses} classes were declared."
                : string.Empty;
            throw new ModelFileException($"the file does not match a '{model.Architecture}' with {model.NumClasses} classes and {model.Input.Channels} input channel(s): {string.Join("; ", problems)}.{hint}");
        }

        using var noGrad = no_grad();
        var converted = 0;
        foreach (var (name, target) in expected)
        {
            if (!state.TryGetValue(name, out var source))
            {
                warnings.Add($"'{name}' is absent (checkpoints from PyTorch < 0.4.1 lack it); it starts at 0");
                continue;
            }

            if (source.dtype != target.dtype)
            {
                if (!(source.is_floating_point() && target.is_floating_point()))
                {
                    throw new ModelFileException($"'{name}' is {source.dtype} in the file but the model needs {target.dtype}");
                }

                converted++;
            }

            target.copy_(source);
        }

        if (converted > 0)
        {
            warnings.Add($"{converted} tensor(s) were converted to float32");
        }
    }

    /// <summary>True when the last 2-D weight (the classifier head) differs in its output dimension.</summary>
    private static bool HeadMismatch(IReadOnlyDictionary<string, Tensor> expected, StateDict state, out long fileClasses)
    {
        fileClasses = 0;
        var head = expected.LastOrDefault(e => e.Value.dim() == 2);
        if (head.Key is null || !state.TryGetValue(head.Key, out var t) || t.dim() != 2 || t.shape[0] == head.Value.shape[0]) return false;
        fileClasses = t.shape[0];
        return true;
    }

    /// <summary>One forward pass on zeros: the model must accept C×H×W and produce one logit per declared class.</summary>
    private static void CheckForward(Classifier model)
    {
        var input = model.Input;
        long[] shape;
        try
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            model.Module.eval();
            shape = model.Forward(zeros(2, input.Channels, input.Height, input.Width)).shape;
        }
        catch (Exception ex) when (ex is ExternalException or ArgumentException or InvalidOperationException)
        {
            throw new ModelFileException(
                $"the model does not accept {input.Channels}×{input.Height}×{input.Width} (C×H×W) inputs: {WebDefense.Core.Runtime.TorchErrors.Cause(ex.Message)}", ex);
        }

        if (shape.Length != 2 || shape[1] != model.NumClasses)
        {
            throw new ModelFileException($"the model outputs shape [{string.Join(',', shape)}] for 2 images, but {model.NumClasses} classes were declared (expected [2,{model.NumClasses}])");
        }
    }

    private static string List(IReadOnlyList<string> items) =>
        string.Join(", ", items.Take(ListedProblems)) + (items.Count > ListedProblems ? $", … ({items.Count - ListedProblems} more)" : string.Empty);

    private static string SafeArchiveName(string stem) =>
        new string(stem.Select(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' ? c : '_').ToArray()) is { Length: > 0 } s ? s : "archive";
}
