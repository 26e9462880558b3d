using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace WebDefense.Core.Models.Zoo;

/// <summary>
/// He et al.'s CIFAR ResNet-n (n = 6k+2: 20, 32, 44, 56, 110) in akamaster/pytorch_resnet_cifar10's layout, which
/// most published CIFAR checkpoints use: 3×3 <c>conv1</c> (16), <c>bn1</c>, ReLU, <c>layer1..layer3</c> of k
/// <see cref="CifarBasicBlock"/>s (16, 32, 64 channels; stride 2 at the start of layers 2 and 3), global average pool,
/// <c>linear</c>. Shortcuts are option A: parameter-free subsampling plus zero channels. 0.27 M parameters for ResNet-20.
/// </summary>
public sealed class CifarResNet : ZooModule
{
    private readonly Conv2d _conv1;
    private readonly BatchNorm2d _bn1;
    private readonly Sequential _layer1, _layer2, _layer3;
    private readonly Linear _linear;

    public CifarResNet(int depth, int numClasses = 10, int inChannels = 3) : base($"resnet{depth}")
    {
        ZooInit.CheckArgs(numClasses, inChannels);
        if (depth < 8 || (depth - 2) % 6 != 0)
        {
            throw new ArgumentException($"a CIFAR ResNet has depth 6k+2 (20, 32, 44, 56, 110), got {depth}", nameof(depth));
        }

        var blocks = (depth - 2) / 6;
        _conv1 = nn.Conv2d(inChannels, 16, 3, stride: 1, padding: 1, bias: false);
        _bn1 = nn.BatchNorm2d(16);
        _layer1 = Layer(16, 16, 1, blocks);
        _layer2 = Layer(16, 32, 2, blocks);
        _layer3 = Layer(32, 64, 2, blocks);
        _linear = nn.Linear(64, numClasses);
        register_module("conv1", _conv1);
        register_module("bn1", _bn1);
        register_module("layer1", _layer1);
        register_module("layer2", _layer2);
        register_module("layer3", _layer3);
        register_module("linear", _linear);
        ZooInit.KaimingConvAndLinear(this);
    }

    private static Sequential Layer(int inPlanes, int planes, int stride, int blocks) =>
        nn.Sequential(Enumerable.Range(0, blocks).Select(i => (nn.Module<Tensor, Tensor>)new CifarBasicBlock(i == 0 ? inPlanes : planes, planes, i == 0 ? stride : 1)).ToArray());

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = nn.functional.relu(_bn1.call(_conv1.call(input)));
        x = _layer3.call(_layer2.call(_layer1.call(x)));
        x = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1);
        return _linear.call(x).MoveToOuterDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _conv1.Dispose(); _bn1.Dispose(); _layer1.Dispose(); _layer2.Dispose(); _layer3.Dispose(); _linear.Dispose();
        }

        base.Dispose(disposing);
    }
}

/// <summary>
/// conv3×3-BN-ReLU-conv3×3-BN, plus the shortcut, then ReLU. When the stride or width changes, the option-A shortcut
/// takes every second pixel and pads (planes − inPlanes)/2 zero channels on each side, as akamaster's LambdaLayer.
/// </summary>
public sealed class CifarBasicBlock : ZooModule
{
    private readonly Conv2d _conv1, _conv2;
    private readonly BatchNorm2d _bn1, _bn2;
    private readonly int _stride;
    private readonly long _padBefore, _padAfter;
    private readonly bool _identity;

    public CifarBasicBlock(int inPlanes, int planes, int stride) : base("CifarBasicBlock")
    {
        _conv1 = nn.Conv2d(inPlanes, planes, 3, stride: stride, padding: 1, bias: false);
        _bn1 = nn.BatchNorm2d(planes);
        _conv2 = nn.Conv2d(planes, planes, 3, stride: 1, padding: 1, bias: false);
        _bn2 = nn.BatchNorm2d(planes);
        register_module("conv1", _conv1);
        register_module("bn1", _bn1);
        register_module("conv2", _conv2);
        register_module("bn2", _bn2);
        _stride = stride;
        _identity = stride == 1 && inPlanes == planes;
        _padBefore = (planes - inPlanes) / 2;
        _padAfter = planes - inPlanes - _padBefore;
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var o = nn.functional.relu(_bn1.call(_conv1.call(x)));
        o = _bn2.call(_conv2.call(o));
        var shortcut = _identity
            ? x
            : nn.functional.pad(
                x[TensorIndex.Colon, TensorIndex.Colon, TensorIndex.Slice(null, null, _stride), TensorIndex.Slice(null, null, _stride)],
                [0, 0, 0, 0, _padBefore, _padAfter]);
        return nn.functional.relu(o.add(shortcut)).MoveToOuterDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _conv1.Dispose(); _bn1.Dispose(); _conv2.Dispose(); _bn2.Dispose();
        }

        base.Dispose(disposing);
    }
}
