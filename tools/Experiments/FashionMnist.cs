using WebDefense.Core.Data;

namespace WebDefense.Experiments;

/// <summary>Fashion-MNIST from Debian's dataset-fashion-mnist package.</summary>
internal static class FashionMnist
{
    public const string Directory = "/usr/share/datasets/fashion-mnist";

    public static ImageDataset Train() => Read("train");
    public static ImageDataset Test() => Read("t10k");

    private static ImageDataset Read(string split)
    {
        var images = Path.Combine(Directory, $"{split}-images-idx3-ubyte.gz");
        if (!File.Exists(images))
        {
            throw new FileNotFoundException($"{images} is missing: apt-get install dataset-fashion-mnist");
        }

        return IdxReader.Read(images, Path.Combine(Directory, $"{split}-labels-idx1-ubyte.gz"));
    }
}
