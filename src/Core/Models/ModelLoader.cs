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

/// <summary>A model file read, checked and ready for work, with its format and anything worth telling the user.</summary>
public sealed class LoadedModel(Classifier classifier, ModelFileFormat format, IReadOnlyList<string> warnings) : IDisposable
{
    public Classifier Classifier { get; } = classifier;
    public ModelFileFormat Format { get; } = format;
    public IReadOnlyList<string> Warnings { get; } = warnings;
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

    public static LoadedModel Load(string path, ModelDeclaration declaration, ModelReadLimits? limits = null)
    {
        declaration.Input.Validate();
        if (declaration.NumClasses < 1)
        {
            throw new ModelFileException($"the number of classes must be at least 1, got {declaration.NumClasses}");
        }

        ModelFileFormat format;
        using (var probe = File.OpenRead(path))
        {
            format = ModelFormatDetector.Detect(probe);
        }

        var warnings = new List<string>();
        var classifier = format == ModelFileFormat.TorchScript
            ? LoadTorchScript(path, declaration, warnings)
            : LoadStateDict(path, format, declaration, limits, warnings);
        try
        {
            CheckForward(classifier);
            return new LoadedModel(classifier, format, warnings);
        }
        catch
        {
            classifier.Dispose();
            throw;
        }
    }

    /// <summary>Writes the model's current weights in <paramref name="format"/> (TorchScript only for TorchScript models).</summary>
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
            case ModelFileFormat.PyTorchStateDict:
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
        ModelFileFormat.PyTorchStateDict => ".pt",
        ModelFileFormat.Safetensors => ".safetensors",
        ModelFileFormat.TorchScript => ".ts.pt",
        ModelFileFormat.TorchSharp => ".dat",
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, null),
    };

    private static Classifier LoadTorchScript(string path, ModelDeclaration declaration, List<string> warnings)
    {
        if (declaration.Architecture is { } arch && !arch.Equals(Classifier.TorchScriptArchitecture, StringComparison.OrdinalIgnoreCase))
        {
            throw new ModelFileException($"the file is a TorchScript archive, which carries its own architecture; declare no architecture (or 'torchscript') instead of '{arch}'");
        }

        var module = TorchScriptModel.Load(path);
        if (TorchScriptModel.LooksTraced(path, module))
        {
            warnings.Add("the archive looks traced (torch.jit.trace): its batch-norm layers ignore train()/eval(), so defenses that fine-tune or unlearn will behave as in the mode it was traced in; export with torch.jit.script");
        }

        return new Classifier(module, Classifier.TorchScriptArchitecture, declaration.NumClasses, declaration.Input);
    }

    private static Classifier LoadStateDict(string path, ModelFileFormat format, ModelDeclaration declaration, ModelReadLimits? limits, List<string> warnings)
    {
        if (declaration.Architecture is not { } arch || !ModelZoo.Contains(arch))
        {
            throw new ModelFileException(
                $"a {Describe(format)} holds weights only, so the architecture must be one of: {string.Join(", ", ModelZoo.Names.Select(n => n.Name))}" +
                (declaration.Architecture is null ? " (none was given)" : $" (got '{declaration.Architecture}')") + "; any other architecture can be uploaded as TorchScript");
        }

        using var state = ReadState(path, format, limits);
        var classifier = ModelZoo.CreateClassifier(arch, declaration.NumClasses, declaration.Input);
        try
        {
            Import(state, classifier, warnings);
            classifier.Module.eval();
            return classifier;
        }
        catch
        {
            classifier.Dispose();
            throw;
        }
    }

    private static StateDict ReadState(string path, ModelFileFormat format, ModelReadLimits? limits)
    {
        using var file = File.OpenRead(path);
        return format switch
        {
            ModelFileFormat.PyTorchStateDict => PyTorchCheckpoint.Read(file, limits),
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
            var first = ex.Message.Split('\n', 2)[0];
            throw new ModelFileException($"the model does not accept {input.Channels}×{input.Height}×{input.Width} (C×H×W) inputs: {first}", ex);
        }

        if (shape.Length != 2 || shape[1] != model.NumClasses)
        {
            throw new ModelFileException($"the model outputs shape [{string.Join(',', shape)}] for 2 images, but {model.NumClasses} classes were declared (expected [2,{model.NumClasses}])");
        }
    }

    private static string List(IReadOnlyList<string> items) =>
        string.Join(", ", items.Take(ListedProblems)) + (items.Count > ListedProblems ? $", … ({items.Count - ListedProblems} more)" : string.Empty);

    private static string Describe(ModelFileFormat format) => format switch
    {
        ModelFileFormat.PyTorchStateDict => "PyTorch state dict",
        ModelFileFormat.Safetensors => "safetensors file",
        _ => "TorchSharp weights file",
    };

    private static string SafeArchiveName(string stem) =>
        new string(stem.Select(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' ? c : '_').ToArray()) is { Length: > 0 } s ? s : "archive";
}
