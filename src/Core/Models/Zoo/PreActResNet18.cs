using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace WebDefense.Core.Models.Zoo;

/// <summary>
/// BackdoorBench's PreActResNet18 (models/preact_resnet.py), exactly as reference-algorithms.md §2:
/// <c>conv1</c> (3×3, no BN/ReLU after it), <c>layer1..layer4</c> of two <see cref="PreActBlock"/>s each,
/// adaptive average pool, <c>linear</c>. No final BN/ReLU. 11,171,146 parameters for 10 classes / 3 channels,
/// 16 BNs with 3,392 channels, 20 convs.
/// </summary>
public sealed class PreActResNet18 : ZooModule
{
    private readonly Conv2d _conv1;
    private readonly Sequential _layer1, _layer2, _layer3, _layer4;
    private readonly Linear _linear;

    public PreActResNet18(int numClasses = 10, int inChannels = 3) : base("preactresnet18")
    {
        ZooInit.CheckArgs(numClasses, inChannels);
        _conv1 = nn.Conv2d(inChannels, 64, 3, stride: 1, padding: 1, bias: false);
        _layer1 = nn.Sequential(new PreActBlock(64, 64, 1), new PreActBlock(64, 64, 1));
        _layer2 = nn.Sequential(new PreActBlock(64, 128, 2), new PreActBlock(128, 128, 1));
        _layer3 = nn.Sequential(new PreActBlock(128, 256, 2), new PreActBlock(256, 256, 1));
        _layer4 = nn.Sequential(new PreActBlock(256, 512, 2), new PreActBlock(512, 512, 1));
        _linear = nn.Linear(512, numClasses);
        register_module("conv1", _conv1);
        register_module("layer1", _layer1);
        register_module("layer2", _layer2);
        register_module("layer3", _layer3);
        register_module("layer4", _layer4);
        register_module("linear", _linear);
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = _conv1.call(input);
        x = _layer4.call(_layer3.call(_layer2.call(_layer1.call(x))));
        x = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1);
        return _linear.call(x).MoveToOuterDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _conv1.Dispose(); _layer1.Dispose(); _layer2.Dispose(); _layer3.Dispose(); _layer4.Dispose(); _linear.Dispose();
        }

        base.Dispose(disposing);
    }
}

/// <summary>
/// Pre-activation basic block: <c>bn1</c>, <c>conv1</c>, <c>bn2</c>, <c>conv2</c>, and <c>shortcut</c>
/// (Sequential with one 1×1 conv, no BN) only when stride ≠ 1 or in ≠ out. The projection sees the
/// pre-activated input, the identity the raw input; no ReLU after the addition.
/// </summary>
public sealed class PreActBlock : ZooModule
{
    private readonly BatchNorm2d _bn1, _bn2;
    private readonly Conv2d _conv1, _conv2;
    private readonly Sequential? _shortcut;

    public PreActBlock(int inPlanes, int planes, int stride = 1) : base("PreActBlock")
    {
        _bn1 = nn.BatchNorm2d(inPlanes);
        _conv1 = nn.Conv2d(inPlanes, planes, 3, stride: stride, padding: 1, bias: false);
        _bn2 = nn.BatchNorm2d(planes);
        _conv2 = nn.Conv2d(planes, planes, 3, stride: 1, padding: 1, bias: false);
        register_module("bn1", _bn1);
        register_module("conv1", _conv1);
        register_module("bn2", _bn2);
        register_module("conv2", _conv2);
        if (stride != 1 || inPlanes != planes)
        {
            _shortcut = nn.Sequential(nn.Conv2d(inPlanes, planes, 1, stride: stride, bias: false));
            register_module("shortcut", _shortcut);
        }
    }

    public bool HasProjection => _shortcut is not null;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var o = nn.functional.relu(_bn1.call(x));
        var residual = _shortcut is null ? x : _shortcut.call(o);
        o = _conv1.call(o);
        o = _conv2.call(nn.functional.relu(_bn2.call(o)));
        return o.add(residual).MoveToOuterDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _bn1.Dispose(); _conv1.Dispose(); _bn2.Dispose(); _conv2.Dispose(); _shortcut?.Dispose();
        }

        base.Dispose(disposing);
    }
}
