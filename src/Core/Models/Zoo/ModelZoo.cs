using TorchSharp;
using static TorchSharp.torch;

namespace WebDefense.Core.Models.Zoo;

/// <summary>
/// One architecture of the zoo: its name (as used in uploads and BackdoorBench), a one-line description, and the
/// square input size it is made for when it has one (CIFAR-style nets: 32), used when an upload gives no input shape.
/// </summary>
public sealed record ZooModelInfo(string Name, string Description, int? InputSize = null);

/// <summary>
/// Native TorchSharp architectures whose state-dict keys, shapes and order equal PyTorch's (BackdoorBench's
/// definitions), so PyTorch weights can be imported by name. Every architecture takes any number of classes
/// and input channels and any reasonable input size (adaptive pooling before the classifier).
/// </summary>
public static class ModelZoo
{
    public static IReadOnlyList<ZooModelInfo> Names { get; } =
    [
        new("preactresnet18", "BackdoorBench PreActResNet18 (CIFAR-style 3×3 stem), 11.2M params; the default for 32×32 images"),
        new("resnet18", "torchvision resnet18 (7×7 stride-2 stem + max pool, unchanged for 32×32), 11.2M params"),
        new("vgg19_bn", "torchvision vgg19_bn (BN after every conv, 7×7 adaptive pool, 4096-wide classifier), 139.6M params"),
        new("mobilenet_v2", "torchvision mobilenet_v2 (width 1.0, dropout 0.2), 2.2M params"),
        new("smallcnn", "small 3-conv CNN with BN for 28×28 grey images (MNIST-like), ~24k params, CPU-trainable"),
        new("resnet20", "CIFAR ResNet-20 (He et al., option-A shortcuts, akamaster layout), 0.27M params", 32),
        new("resnet32", "CIFAR ResNet-32 (option A, akamaster layout), 0.46M params", 32),
        new("resnet44", "CIFAR ResNet-44 (option A, akamaster layout), 0.66M params", 32),
        new("resnet56", "CIFAR ResNet-56 (option A, akamaster layout), 0.85M params", 32),
        new("resnet110", "CIFAR ResNet-110 (option A, akamaster layout), 1.7M params", 32),
        new("wrn16_1", "Wide-ResNet-16-1 (NAD/ABL/MEDIC layout: block1..3.layer, convShortcut), 0.18M params", 32),
        new("wrn16_2", "Wide-ResNet-16-2 (NAD/ABL layout), 0.69M params", 32),
        new("wrn16_4", "Wide-ResNet-16-4 (NAD/ABL layout), 2.7M params", 32),
        new("wrn16_8", "Wide-ResNet-16-8 (NAD/ABL layout), 11M params", 32),
        new("wrn28_2", "Wide-ResNet-28-2 (NAD/ABL layout), 1.5M params", 32),
        new("wrn28_10", "Wide-ResNet-28-10 (NAD/ABL layout), 36.5M params", 32),
        new("wrn40_1", "Wide-ResNet-40-1 (NAD/ABL layout), 0.57M params", 32),
        new("wrn40_2", "Wide-ResNet-40-2 (NAD/ABL layout), 2.2M params", 32),
        new("smallvgg", "I-BAU's small VGG (3×2 conv-BN-ELU, 32/64/128, dropout, Linear 2048), 0.31M params", 32),
        new("lenet5", "LeNet-5 as BadNets re-implementations publish it (2 conv5×5 16/32 + avg pool, Linear 800-120-84), 0.12M params", 32),
    ];

    /// <summary>A zoo model with fresh weights, wrapped as a <see cref="Classifier"/> that can copy itself.</summary>
    public static Classifier CreateClassifier(string name, int numClasses, Data.InputSpec input) =>
        new(Create(name, numClasses, input.Channels), name, numClasses, input, () => Create(name, numClasses, input.Channels));

    /// <summary>Creates an architecture with fresh weights (PyTorch's / torchvision's initialisation).</summary>
    /// <exception cref="ArgumentException">Unknown name (the message lists the valid ones) or bad sizes.</exception>
    public static nn.Module<Tensor, Tensor> Create(string name, int numClasses, int inChannels = 3)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (numClasses < 1 || numClasses > 100_000)
        {
            throw new ArgumentException($"numClasses must be between 1 and 100000, got {numClasses}", nameof(numClasses));
        }

        if (inChannels < 1 || inChannels > 64)
        {
            throw new ArgumentException($"inChannels must be between 1 and 64, got {inChannels}", nameof(inChannels));
        }

        return name.Trim().ToLowerInvariant() switch
        {
            "preactresnet18" => new PreActResNet18(numClasses, inChannels),
            "resnet18" => new ResNet18(numClasses, inChannels),
            "vgg19_bn" => new Vgg19Bn(numClasses, inChannels),
            "mobilenet_v2" => new MobileNetV2(numClasses, inChannels),
            "smallcnn" => new SmallCnn(numClasses, inChannels),
            "smallvgg" => new SmallVgg(numClasses, inChannels),
            "lenet5" => new LeNet5(numClasses, inChannels),
            var n when n.StartsWith("resnet", StringComparison.Ordinal) && int.TryParse(n.AsSpan(6), out var depth) && Contains(n) => new CifarResNet(depth, numClasses, inChannels),
            var n when n.StartsWith("wrn", StringComparison.Ordinal) && Contains(n) && n[3..].Split('_') is [var d, var k] =>
                new WideResNet(int.Parse(d, System.Globalization.CultureInfo.InvariantCulture), int.Parse(k, System.Globalization.CultureInfo.InvariantCulture), numClasses, inChannels),
            _ => throw new ArgumentException(
                $"unknown architecture '{name}'; valid names: {string.Join(", ", Names.Select(n => n.Name))}", nameof(name)),
        };
    }

    /// <summary>True when <paramref name="name"/> is a zoo architecture (case-insensitive).</summary>
    public static bool Contains(string name) => NameOf(name) is not null;

    /// <summary>The zoo's own spelling of <paramref name="name"/> (case-insensitive, trimmed), or null when it is not a zoo architecture.</summary>
    public static string? NameOf(string? name) =>
        Names.FirstOrDefault(n => string.Equals(n.Name, name?.Trim(), StringComparison.OrdinalIgnoreCase))?.Name;

    /// <summary>Number of parameter elements (trainable or not; BN running statistics excluded).</summary>
    public static long ParameterCount(nn.Module module)
    {
        ArgumentNullException.ThrowIfNull(module);
        return module.parameters().Sum(p => p.numel());
    }
}
