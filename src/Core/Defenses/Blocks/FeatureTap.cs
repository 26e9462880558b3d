using TorchSharp;
using WebDefense.Core.Models;
using static TorchSharp.torch;

namespace WebDefense.Core.Defenses.Blocks;

/// <summary>
/// Intermediate outputs of named submodules of a native (zoo) model, captured by forward hooks during
/// <see cref="Forward"/> only (other forwards, e.g. evaluation, capture nothing). The features stay in the
/// autograd graph. TorchScript modules have no hooks on their submodules, so they are refused.
/// </summary>
public sealed class FeatureTap : IDisposable
{
    private readonly Classifier _model;
    private readonly string[] _names;
    private readonly List<Action> _removers = [];
    private readonly Tensor?[] _captured;
    private bool _armed;

    /// <exception cref="InvalidOperationException">TorchScript model, or a name that is not a submodule.</exception>
    public FeatureTap(Classifier model, IReadOnlyList<string> moduleNames)
    {
        if (model.IsTorchScript)
        {
            throw new InvalidOperationException("intermediate features need forward hooks, which TorchScript models do not offer; use a zoo architecture");
        }

        _model = model;
        _names = moduleNames.ToArray();
        _captured = new Tensor?[_names.Length];
        var modules = model.Module.named_modules().ToDictionary(m => m.name, m => m.module, StringComparer.Ordinal);
        for (var i = 0; i < _names.Length; i++)
        {
            var slot = i;
            if (!modules.TryGetValue(_names[i], out var module) || module is not nn.Module<Tensor, Tensor> hookable)
            {
                throw new InvalidOperationException($"the model has no tensor-to-tensor submodule '{_names[i]}'");
            }

            var remover = hookable.register_forward_hook((_, _, output) =>
            {
                if (_armed)
                {
                    _captured[slot]?.Dispose();
                    // An own handle outside the module's dispose scope (the module's forward disposes its intermediates).
                    _captured[slot] = output.alias().DetachFromDisposeScope();
                }

                return null!;
            });
            _removers.Add(remover.remove);
        }
    }

    /// <summary>
    /// Logits for a normalised batch and the tapped features in the order of the names given. The features are
    /// owned by the caller (dispose them when done; autograd keeps what it needs).
    /// </summary>
    public (Tensor Logits, Tensor[] Features) Forward(Tensor input)
    {
        _armed = true;
        try
        {
            var logits = _model.Forward(input);
            var features = new Tensor[_names.Length];
            for (var i = 0; i < _names.Length; i++)
            {
                features[i] = _captured[i] ?? throw new InvalidOperationException($"submodule '{_names[i]}' was not called by the forward pass");
                _captured[i] = null;
            }

            return (logits, features);
        }
        finally
        {
            _armed = false;
        }
    }

    public void Dispose()
    {
        _removers.ForEach(remove => remove());
        foreach (var t in _captured) t?.Dispose();
    }
}
