using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace WebDefense.Core.Models.Zoo;

/// <summary>
/// torchvision's <c>vgg19_bn</c> as BackdoorBench builds it (no changes for 32×32 inputs): <c>features</c>
/// (16 × conv3×3-BN-ReLU, 5 max pools; Sequential indices as torchvision's), <c>AdaptiveAvgPool2d(7×7)</c>,
/// <c>classifier</c> = Linear(25088→4096), ReLU, Dropout, Linear(4096→4096), ReLU, Dropout, Linear(4096→classes).
/// 139,622,218 parameters for 10 classes (≈560 MB float32). torchvision's initialisation.
/// </summary>
public sealed class Vgg19Bn : ZooModule
{
    private static readonly int[] Config = [64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512, 512, 0];

    private readonly Sequential _features;
    private readonly AdaptiveAvgPool2d _avgpool;
    private readonly Sequential _classifier;

    public Vgg19Bn(int numClasses = 10, int inChannels = 3, double dropout = 0.5) : base("vgg19_bn")
    {
        ZooInit.CheckArgs(numClasses, inChannels);
        var layers = new List<nn.Module<Tensor, Tensor>>();
        var c = inChannels;
        foreach (var v in Config)
        {
            if (v == 0)
            {
                layers.Add(nn.MaxPool2d(2, 2));
            }
            else
            {
                layers.Add(nn.Conv2d(c, v, 3, padding: 1));
                layers.Add(nn.BatchNorm2d(v));
                layers.Add(nn.ReLU(inplace: true));
                c = v;
            }
        }

        _features = nn.Sequential(layers);
        _avgpool = nn.AdaptiveAvgPool2d([7, 7]);
        _classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace: true), nn.Dropout(dropout),
            nn.Linear(4096, 4096), nn.ReLU(inplace: true), nn.Dropout(dropout),
            nn.Linear(4096, numClasses));
        register_module("features", _features);
        register_module("avgpool", _avgpool);
        register_module("classifier", _classifier);
        ZooInit.TorchvisionConvBn(this);
        ZooInit.LinearNormal(this);
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = _avgpool.call(_features.call(input)).flatten(1);
        return _classifier.call(x).MoveToOuterDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _features.Dispose(); _avgpool.Dispose(); _classifier.Dispose();
        }

        base.Dispose(disposing);
    }
}
