using TorchSharp;
using WebDefense.Core.Models;
using static TorchSharp.torch;

namespace WebDefense.Core.Training;

/// <summary>
/// TSBD's activeness-aware fine-tuning step (reference-algorithms §12 stage 2), the finite-difference form of
/// minimising CE + α·r·‖∇CE‖: g₁ = ∇CE(θ); θ' = θ + r·g₁/‖g₁‖; g₂ = ∇CE(θ'); the step uses (1 − α)·g₁ + α·g₂.
/// Plug <see cref="Loss"/> and <see cref="AfterStep"/> into a <see cref="TrainingLoop"/>: <see cref="Loss"/> computes
/// both gradients itself and returns a surrogate whose value is CE(θ) and whose gradient is the combination, so the
/// loop's backward and optimizer step apply it. As in the reference, the two gradient passes leave the BN running
/// statistics unchanged (the reference runs them on a copy) and <see cref="AfterStep"/> runs one more train-mode
/// forward of the batch after the step, which is what updates them.
/// </summary>
public sealed class GradientNormRegularization(double radius, double alpha, bool perTensorNorm = true)
{
    private Tensor? _inputs;

    public BatchLoss Loss(Classifier model, TrainingBatch batch)
    {
        var parameters = model.Module.parameters().Where(p => p.requires_grad).ToList();
        var buffers = model.Module.named_buffers().Select(b => (Live: b.buffer, Saved: b.buffer.detach().clone())).ToList();
        var logits = model.Forward(batch.Inputs);
        var ce = nn.functional.cross_entropy(logits, batch.Labels);
        var g1 = Gradients(ce, parameters);
        Tensor[] step;
        using (no_grad())
        {
            var global = perTensorNorm ? null : stack(g1.Select(g => g.norm()).ToArray()).norm();
            step = g1.Select(g => g * (radius / ((global ?? g.norm()) + 1e-12))).ToArray();
            for (var i = 0; i < parameters.Count; i++) parameters[i].add_(step[i]);
        }

        var g2 = Gradients(nn.functional.cross_entropy(model.Forward(batch.Inputs), batch.Labels), parameters);
        using (no_grad())
        {
            for (var i = 0; i < parameters.Count; i++) parameters[i].sub_(step[i]);
            foreach (var (live, saved) in buffers) live.copy_(saved);
        }

        var surrogate = zeros(1, device: model.Device);
        for (var i = 0; i < parameters.Count; i++) surrogate = surrogate + (parameters[i] * (g1[i] * (1 - alpha) + g2[i] * alpha)).sum();
        _inputs = batch.Inputs;
        return new BatchLoss(ce.detach() + surrogate.squeeze() - surrogate.squeeze().detach(), logits.detach());
    }

    /// <summary>A train-mode forward of the last batch at the new weights (updates BN running statistics).</summary>
    public void AfterStep(Classifier model)
    {
        if (_inputs is null) return;
        using var noGrad = no_grad();
        model.Forward(_inputs);
        _inputs = null;
    }

    private static Tensor[] Gradients(Tensor loss, IReadOnlyList<Tensor> parameters)
    {
        foreach (var p in parameters) p.grad?.zero_();
        loss.backward();
        var grads = parameters.Select(p => p.grad is { } g ? g.clone() : zeros_like(p)).ToArray();
        foreach (var p in parameters) p.grad?.zero_();
        return grads;
    }
}
