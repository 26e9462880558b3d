using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace WebDefense.Core.Models.Zoo;

/// <summary>
/// torchvision's <c>mobilenet_v2</c> (width 1.0) as BackdoorBench builds it (no changes for 32×32 inputs):
/// <c>features.0</c> = conv3×3 s2 (in→32)-BN-ReLU6, <c>features.1..17</c> inverted residual blocks
/// (<c>conv</c> Sequential), <c>features.18</c> = conv1×1 (320→1280)-BN-ReLU6, global average pool,
/// <c>classifier</c> = Dropout(0.2), Linear(1280→classes). 2,236,682 parameters for 10 classes.
/// torchvision's initialisation.
/// </summary>
public sealed class MobileNetV2 : ZooModule
{
    // t (expansion), c (channels), n (repeats), s (first stride)
    private static readonly int[][] Settings =
        [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]];

    private readonly Sequential _features;
    private readonly Sequential _classifier;

    public MobileNetV2(int numClasses = 10, int inChannels = 3, double dropout = 0.2) : base("mobilenet_v2")
    {
        ZooInit.CheckArgs(numClasses, inChannels);
        const int firstChannels = 32, lastChannels = 1280;
        var layers = new List<nn.Module<Tensor, Tensor>> { ConvBnReLU6(inChannels, firstChannels, 3, 2) };
        var c = firstChannels;
        foreach (var s in Settings)
        {
            for (var i = 0; i < s[2]; i++)
            {
                layers.Add(new InvertedResidual(c, s[1], i == 0 ? s[3] : 1, s[0]));
                c = s[1];
            }
        }

        layers.Add(ConvBnReLU6(c, lastChannels, 1, 1));
        _features = nn.Sequential(layers);
        _classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(lastChannels, numClasses));
        register_module("features", _features);
        register_module("classifier", _classifier);
        ZooInit.TorchvisionConvBn(this);
        ZooInit.LinearNormal(this);
    }

    /// <summary>torchvision Conv2dNormActivation: Sequential(0 conv (no bias), 1 BN, 2 ReLU6), "same" padding.</summary>
    internal static Sequential ConvBnReLU6(int inC, int outC, int kernel, int stride, int groups = 1) =>
        nn.Sequential(
            nn.Conv2d(inC, outC, kernel, stride: stride, padding: (kernel - 1) / 2, groups: groups, bias: false),
            nn.BatchNorm2d(outC),
            nn.ReLU6(inplace: true));

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = _features.call(input);
        x = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1);
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

/// <summary>
/// torchvision InvertedResidual: <c>conv</c> = [pw ConvBNReLU6 (if expansion ≠ 1)], dw ConvBNReLU6, pw-linear conv,
/// BN; residual connection when stride 1 and in = out.
/// </summary>
public sealed class InvertedResidual : ZooModule
{
    private readonly Sequential _conv;
    private readonly bool _useResidual;

    public InvertedResidual(int inp, int oup, int stride, int expandRatio) : base("InvertedResidual")
    {
        var hidden = (int)Math.Round((double)inp * expandRatio, MidpointRounding.ToEven);
        _useResidual = stride == 1 && inp == oup;
        var layers = new List<nn.Module<Tensor, Tensor>>();
        if (expandRatio != 1)
        {
            layers.Add(MobileNetV2.ConvBnReLU6(inp, hidden, 1, 1));
        }

        layers.Add(MobileNetV2.ConvBnReLU6(hidden, hidden, 3, stride, groups: hidden));
        layers.Add(nn.Conv2d(hidden, oup, 1, stride: 1, bias: false));
        layers.Add(nn.BatchNorm2d(oup));
        _conv = nn.Sequential(layers);
        register_module("conv", _conv);
    }

    public override Tensor forward(Tensor x)
    {
        if (!_useResidual)
        {
            return _conv.call(x);
        }

        using var scope = NewDisposeScope();
        return x.add(_conv.call(x)).MoveToOuterDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _conv.Dispose();
        }

        base.Dispose(disposing);
    }
}
