using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace WebDefense.Core.Models.Zoo;

/// <summary>Weight initialisations used by torchvision's model constructors.</summary>
internal static class ZooInit
{
    /// <summary>torchvision (resnet, vgg, mobilenet): conv kaiming_normal_(fan_out, relu), bias 0; BN γ=1, β=0.</summary>
    public static void TorchvisionConvBn(nn.Module root)
    {
        using var noGrad = no_grad();
        foreach (var (_, m) in root.named_modules())
        {
            switch (m)
            {
                case Conv2d conv:
                    nn.init.kaiming_normal_(conv.weight, mode: nn.init.FanInOut.FanOut, nonlinearity: nn.init.NonlinearityType.ReLU);
                    if (conv.bias is not null)
                    {
                        nn.init.zeros_(conv.bias);
                    }

                    break;
                case BatchNorm2d bn:
                    if (bn.weight is not null)
                    {
                        nn.init.ones_(bn.weight);
                    }

                    if (bn.bias is not null)
                    {
                        nn.init.zeros_(bn.bias);
                    }

                    break;
            }
        }
    }

    /// <summary>torchvision vgg / mobilenet: Linear weight ~ N(0, 0.01), bias 0.</summary>
    public static void LinearNormal(nn.Module root, double std = 0.01)
    {
        using var noGrad = no_grad();
        foreach (var (_, m) in root.named_modules())
        {
            if (m is Linear lin)
            {
                nn.init.normal_(lin.weight, 0, std);
                if (lin.bias is not null)
                {
                    nn.init.zeros_(lin.bias);
                }
            }
        }
    }

    /// <summary>akamaster's CIFAR ResNet: conv and Linear weights kaiming_normal_ (fan_in), PyTorch's defaults otherwise.</summary>
    public static void KaimingConvAndLinear(nn.Module root)
    {
        using var noGrad = no_grad();
        foreach (var (_, m) in root.named_modules())
        {
            switch (m)
            {
                case Conv2d conv:
                    nn.init.kaiming_normal_(conv.weight);
                    break;
                case Linear lin:
                    nn.init.kaiming_normal_(lin.weight);
                    break;
            }
        }
    }

    public static void CheckArgs(int numClasses, int inChannels)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numClasses, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(inChannels, 1);
    }
}
