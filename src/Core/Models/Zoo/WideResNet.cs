using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace WebDefense.Core.Models.Zoo;

/// <summary>
/// Zagoruyko and Komodakis' Wide-ResNet-d-k in the layout of xternalz/WideResNet-pytorch that NAD, ABL and MEDIC
/// publish (WRN-16-1 …): 3×3 <c>conv1</c> (16), <c>block1..block3</c> each holding <c>layer</c>, a Sequential of
/// (d−4)/6 <see cref="WrnBlock"/>s of width 16k, 32k, 64k (stride 2 at the start of blocks 2 and 3), then <c>bn1</c>,
/// ReLU, global average pool and <c>fc</c>. No dropout (the published checkpoints use drop rate 0).
/// </summary>
public sealed class WideResNet : ZooModule
{
    private readonly Conv2d _conv1;
    private readonly WrnStage _block1, _block2, _block3;
    private readonly BatchNorm2d _bn1;
    private readonly Linear _fc;

    public WideResNet(int depth, int widen, int numClasses = 10, int inChannels = 3) : base($"wrn{depth}_{widen}")
    {
        ZooInit.CheckArgs(numClasses, inChannels);
        if (depth < 10 || (depth - 4) % 6 != 0 || widen < 1 || widen > 32)
        {
            throw new ArgumentException($"a Wide-ResNet has depth 6n+4 (16, 22, 28, 40) and width 1..32, got {depth}-{widen}", nameof(depth));
        }

        var n = (depth - 4) / 6;
        _conv1 = nn.Conv2d(inChannels, 16, 3, stride: 1, padding: 1, bias: false);
        _block1 = new WrnStage(16, 16 * widen, 1, n);
        _block2 = new WrnStage(16 * widen, 32 * widen, 2, n);
        _block3 = new WrnStage(32 * widen, 64 * widen, 2, n);
        _bn1 = nn.BatchNorm2d(64 * widen);
        _fc = nn.Linear(64 * widen, numClasses);
        register_module("conv1", _conv1);
        register_module("block1", _block1);
        register_module("block2", _block2);
        register_module("block3", _block3);
        register_module("bn1", _bn1);
        register_module("fc", _fc);
        ZooInit.TorchvisionConvBn(this);
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = _block3.call(_block2.call(_block1.call(_conv1.call(input))));
        x = nn.functional.relu(_bn1.call(x));
        x = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1);
        return _fc.call(x).MoveToOuterDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _conv1.Dispose(); _block1.Dispose(); _block2.Dispose(); _block3.Dispose(); _bn1.Dispose(); _fc.Dispose();
        }

        base.Dispose(disposing);
    }
}

/// <summary>xternalz's NetworkBlock: one child <c>layer</c>, a Sequential of <see cref="WrnBlock"/>s.</summary>
public sealed class WrnStage : ZooModule
{
    // Named as its state-dict key: TorchSharp's RegisterComponents (run when the parent registers this module) adds
    // every module field under its field name, so "_layer" would appear as a second copy next to "layer".
#pragma warning disable IDE1006
    private readonly Sequential layer;
#pragma warning restore IDE1006

    public WrnStage(int inPlanes, int planes, int stride, int blocks) : base("NetworkBlock")
    {
        layer = nn.Sequential(Enumerable.Range(0, blocks)
            .Select(i => (nn.Module<Tensor, Tensor>)new WrnBlock(i == 0 ? inPlanes : planes, planes, i == 0 ? stride : 1)).ToArray());
        register_module("layer", layer);
    }

    public override Tensor forward(Tensor x) => layer.call(x);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            layer.Dispose();
        }

        base.Dispose(disposing);
    }
}

/// <summary>
/// Pre-activation block: <c>bn1</c>-ReLU-<c>conv1</c>-<c>bn2</c>-ReLU-<c>conv2</c>. With equal widths the input is
/// added unchanged; otherwise <c>convShortcut</c> (1×1, strided) sees the pre-activated input, which the conv path
/// also takes (xternalz's <c>equalInOut</c>).
/// </summary>
public sealed class WrnBlock : ZooModule
{
    private readonly BatchNorm2d _bn1, _bn2;
    private readonly Conv2d _conv1, _conv2;
    private readonly Conv2d? _convShortcut;

    public WrnBlock(int inPlanes, int planes, int stride) : base("BasicBlock")
    {
        _bn1 = nn.BatchNorm2d(inPlanes);
        _conv1 = nn.Conv2d(inPlanes, planes, 3, stride: stride, padding: 1, bias: false);
        _bn2 = nn.BatchNorm2d(planes);
        _conv2 = nn.Conv2d(planes, planes, 3, stride: 1, padding: 1, bias: false);
        register_module("bn1", _bn1);
        register_module("conv1", _conv1);
        register_module("bn2", _bn2);
        register_module("conv2", _conv2);
        if (inPlanes != planes || stride != 1)
        {
            _convShortcut = nn.Conv2d(inPlanes, planes, 1, stride: stride, bias: false);
            register_module("convShortcut", _convShortcut);
        }
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var pre = nn.functional.relu(_bn1.call(x));
        var o = _conv2.call(nn.functional.relu(_bn2.call(_conv1.call(pre))));
        var shortcut = _convShortcut is null ? x : _convShortcut.call(pre);
        return o.add(shortcut).MoveToOuterDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _bn1.Dispose(); _conv1.Dispose(); _bn2.Dispose(); _conv2.Dispose(); _convShortcut?.Dispose();
        }

        base.Dispose(disposing);
    }
}
