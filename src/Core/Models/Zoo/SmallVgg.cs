using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace WebDefense.Core.Models.Zoo;

/// <summary>
/// The small VGG that I-BAU publishes its CIFAR-10 and GTSRB checkpoints with (<c>VGG('small_VGG16')</c>):
/// <c>features</c> = [conv3×3(pad 1, bias)-BN-ELU] ×2 (32), max pool 2, dropout 0.3, ×2 (64), max pool, dropout 0.4,
/// ×2 (128), max pool, dropout 0.4; <c>classifier</c> = Linear(128·4·4 → classes). An adaptive average pool to 4×4 before
/// the classifier is the identity on 32×32 inputs and lets other sizes through. 0.31 M parameters for 10 classes.
/// </summary>
public sealed class SmallVgg : ZooModule
{
    private readonly Sequential _features;
    private readonly Linear _classifier;

    public SmallVgg(int numClasses = 10, int inChannels = 3) : base("smallvgg")
    {
        ZooInit.CheckArgs(numClasses, inChannels);
        var layers = new List<nn.Module<Tensor, Tensor>>();
        var channels = inChannels;
        foreach (var (width, drop) in new[] { (32, 0.3), (64, 0.4), (128, 0.4) })
        {
            for (var i = 0; i < 2; i++)
            {
                layers.Add(nn.Conv2d(channels, width, 3, padding: 1));
                layers.Add(nn.BatchNorm2d(width));
                layers.Add(nn.ELU(inplace: true));
                channels = width;
            }

            layers.Add(nn.MaxPool2d(2, 2));
            layers.Add(nn.Dropout(drop));
        }

        _features = nn.Sequential(layers.ToArray());
        _classifier = nn.Linear(128 * 4 * 4, numClasses);
        register_module("features", _features);
        register_module("classifier", _classifier);
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = nn.functional.adaptive_avg_pool2d(_features.call(input), 4).flatten(1);
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
