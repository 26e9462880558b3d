using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace WebDefense.Core.Models.Zoo;

/// <summary>
/// A small CNN for 28×28 grey images (about 24k parameters for 1 channel / 10 classes), fast enough to train
/// on a CPU in tests and demos. conv(in→16)-BN-ReLU-maxpool2, conv(16→32)-BN-ReLU-maxpool2, conv(32→64)-BN-ReLU,
/// global average pool, <c>fc</c>. Convs are 3×3, pad 1, without bias (each is followed by a BN).
/// State-dict keys: conv1, bn1, conv2, bn2, conv3, bn3, fc (as tools/fixtures/make_interop_fixtures.py).
/// </summary>
public sealed class SmallCnn : ZooModule
{
    private readonly Conv2d _conv1, _conv2, _conv3;
    private readonly BatchNorm2d _bn1, _bn2, _bn3;
    private readonly Linear _fc;

    public SmallCnn(int numClasses = 10, int inChannels = 1) : base("smallcnn")
    {
        ZooInit.CheckArgs(numClasses, inChannels);
        _conv1 = nn.Conv2d(inChannels, 16, 3, padding: 1, bias: false);
        _bn1 = nn.BatchNorm2d(16);
        _conv2 = nn.Conv2d(16, 32, 3, padding: 1, bias: false);
        _bn2 = nn.BatchNorm2d(32);
        _conv3 = nn.Conv2d(32, 64, 3, padding: 1, bias: false);
        _bn3 = nn.BatchNorm2d(64);
        _fc = nn.Linear(64, numClasses);
        register_module("conv1", _conv1);
        register_module("bn1", _bn1);
        register_module("conv2", _conv2);
        register_module("bn2", _bn2);
        register_module("conv3", _conv3);
        register_module("bn3", _bn3);
        register_module("fc", _fc);
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = nn.functional.max_pool2d(nn.functional.relu(_bn1.call(_conv1.call(input))), 2);
        x = nn.functional.max_pool2d(nn.functional.relu(_bn2.call(_conv2.call(x))), 2);
        x = nn.functional.relu(_bn3.call(_conv3.call(x)));
        x = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1);
        return _fc.call(x).MoveToOuterDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _conv1.Dispose(); _bn1.Dispose(); _conv2.Dispose(); _bn2.Dispose(); _conv3.Dispose(); _bn3.Dispose(); _fc.Dispose();
        }

        base.Dispose(disposing);
    }
}
