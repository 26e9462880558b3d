using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace WebDefense.Core.Models.Zoo;

/// <summary>
/// LeNet-5 as the BadNets re-implementations publish it for 32×32 images (e.g. sashankneupane's BadNet):
/// <c>features</c> = conv5×5(→16)-ReLU-avgpool2, conv5×5(16→32)-ReLU-avgpool2; <c>classifier</c> = dropout 0.5,
/// Linear(32·5·5 → 120), ReLU, dropout 0.5, Linear(120 → 84), ReLU, Linear(84 → classes). Convs and Linears have biases.
/// An adaptive average pool to 5×5 before the classifier is the identity on 32×32 inputs. 0.12 M parameters for 10 classes.
/// </summary>
public sealed class LeNet5 : ZooModule
{
    private readonly Sequential _features, _classifier;

    public LeNet5(int numClasses = 10, int inChannels = 3) : base("lenet5")
    {
        ZooInit.CheckArgs(numClasses, inChannels);
        _features = nn.Sequential(
            nn.Conv2d(inChannels, 16, 5), nn.ReLU(), nn.AvgPool2d(2, 2),
            nn.Conv2d(16, 32, 5), nn.ReLU(), nn.AvgPool2d(2, 2));
        _classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(32 * 5 * 5, 120), nn.ReLU(),
            nn.Dropout(0.5), nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, numClasses));
        register_module("features", _features);
        register_module("classifier", _classifier);
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = nn.functional.adaptive_avg_pool2d(_features.call(input), 5).flatten(1);
        return _classifier.call(x).MoveToOuterDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _features.Dispose(); _classifier.Dispose();
        }

        base.Dispose(disposing);
    }
}
