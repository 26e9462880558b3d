using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace WebDefense.Core.Models.Zoo;

/// <summary>
/// torchvision's <c>resnet18</c> as BackdoorBench builds it (<c>resnet18(num_classes=…)</c>, no changes for
/// 32×32 inputs): 7×7 stride-2 <c>conv1</c>, <c>bn1</c>, ReLU, 3×3 stride-2 max pool, <c>layer1..layer4</c>
/// of two <see cref="BasicBlock"/>s, adaptive average pool, <c>fc</c>. 11,181,642 parameters for 10 classes.
/// Only the first conv's input channels change with <c>inChannels</c>. torchvision's initialisation.
/// </summary>
public sealed class ResNet18 : ZooModule
{
    private readonly Conv2d _conv1;
    private readonly BatchNorm2d _bn1;
    private readonly Sequential _layer1, _layer2, _layer3, _layer4;
    private readonly Linear _fc;

    public ResNet18(int numClasses = 10, int inChannels = 3) : base("resnet18")
    {
        ZooInit.CheckArgs(numClasses, inChannels);
        _conv1 = nn.Conv2d(inChannels, 64, 7, stride: 2, padding: 3, bias: false);
        _bn1 = nn.BatchNorm2d(64);
        _layer1 = nn.Sequential(new BasicBlock(64, 64, 1), new BasicBlock(64, 64, 1));
        _layer2 = nn.Sequential(new BasicBlock(64, 128, 2), new BasicBlock(128, 128, 1));
        _layer3 = nn.Sequential(new BasicBlock(128, 256, 2), new BasicBlock(256, 256, 1));
        _layer4 = nn.Sequential(new BasicBlock(256, 512, 2), new BasicBlock(512, 512, 1));
        _fc = nn.Linear(512, numClasses);
        register_module("conv1", _conv1);
        register_module("bn1", _bn1);
        register_module("layer1", _layer1);
        register_module("layer2", _layer2);
        register_module("layer3", _layer3);
        register_module("layer4", _layer4);
        register_module("fc", _fc);
        ZooInit.TorchvisionConvBn(this);
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = nn.functional.relu(_bn1.call(_conv1.call(input)));
        x = nn.functional.max_pool2d(x, 3, 2, 1);
        x = _layer4.call(_layer3.call(_layer2.call(_layer1.call(x))));
        x = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1);
        return _fc.call(x).MoveToOuterDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _conv1.Dispose(); _bn1.Dispose(); _layer1.Dispose(); _layer2.Dispose(); _layer3.Dispose(); _layer4.Dispose(); _fc.Dispose();
        }

        base.Dispose(disposing);
    }
}

/// <summary>torchvision BasicBlock: conv1 (3×3, stride), bn1, ReLU, conv2, bn2, + downsample (1×1 conv + BN) or identity, ReLU.</summary>
public sealed class BasicBlock : ZooModule
{
    private readonly Conv2d _conv1, _conv2;
    private readonly BatchNorm2d _bn1, _bn2;
    private readonly Sequential? _downsample;

    public BasicBlock(int inPlanes, int planes, int stride = 1) : base("BasicBlock")
    {
        _conv1 = nn.Conv2d(inPlanes, planes, 3, stride: stride, padding: 1, bias: false);
        _bn1 = nn.BatchNorm2d(planes);
        _conv2 = nn.Conv2d(planes, planes, 3, stride: 1, padding: 1, bias: false);
        _bn2 = nn.BatchNorm2d(planes);
        register_module("conv1", _conv1);
        register_module("bn1", _bn1);
        register_module("conv2", _conv2);
        register_module("bn2", _bn2);
        if (stride != 1 || inPlanes != planes)
        {
            _downsample = nn.Sequential(nn.Conv2d(inPlanes, planes, 1, stride: stride, bias: false), nn.BatchNorm2d(planes));
            register_module("downsample", _downsample);
        }
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var o = nn.functional.relu(_bn1.call(_conv1.call(x)));
        o = _bn2.call(_conv2.call(o));
        var identity = _downsample is null ? x : _downsample.call(x);
        return nn.functional.relu(o.add(identity)).MoveToOuterDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _conv1.Dispose(); _bn1.Dispose(); _conv2.Dispose(); _bn2.Dispose(); _downsample?.Dispose();
        }

        base.Dispose(disposing);
    }
}
