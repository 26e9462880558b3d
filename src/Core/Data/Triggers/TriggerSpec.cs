using System.Text.Json;
using System.Text.Json.Serialization;
using static TorchSharp.torch;

namespace WebDefense.Core.Data.Triggers;

/// <summary>
/// A backdoor trigger, as JSON with a <c>"type"</c> of <c>"patch"</c> (BadNets), <c>"blend"</c> (Blended),
/// <c>"sig"</c> (SIG) or <c>"mask"</c> (a mask and pattern, e.g. a scan's reconstruction). <see cref="ApplyTo"/> reproduces BackdoorBench's arithmetic on raw uint8 pixels:
/// float math, clip to [0,255], truncate to uint8 (reference-algorithms §3.2–3.4).
/// </summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "type", UnknownDerivedTypeHandling = JsonUnknownDerivedTypeHandling.FailSerialization)]
[JsonDerivedType(typeof(PatchTrigger), "patch")]
[JsonDerivedType(typeof(BlendTrigger), "blend")]
[JsonDerivedType(typeof(SigTrigger), "sig")]
[JsonDerivedType(typeof(MaskTrigger), "mask")]
public abstract record TriggerSpec
{
    private const int BatchSize = 1024;

    public static JsonSerializerOptions JsonOptions { get; } = new(JsonSerializerDefaults.Web)
    {
        AllowOutOfOrderMetadataProperties = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    /// <summary>Parses and validates (shape-independent checks) a JSON trigger description.</summary>
    public static TriggerSpec FromJson(string json)
    {
        TriggerSpec? spec;
        try
        {
            spec = JsonSerializer.Deserialize<TriggerSpec>(json, JsonOptions);
        }
        catch (JsonException e)
        {
            throw new InvalidTriggerException($"invalid trigger description: {e.Message}", e);
        }
        catch (NotSupportedException e)
        {
            throw new InvalidTriggerException($"invalid trigger description (is \"type\" one of patch, blend, sig, mask?): {e.Message}", e);
        }

        if (spec is null)
        {
            throw new InvalidTriggerException("invalid trigger description: null");
        }

        spec.Validate();
        return spec;
    }

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>Checks that do not depend on the image shape.</summary>
    public abstract void Validate();

    /// <summary>Checks everything, including that the trigger fits <paramref name="channels"/>×<paramref name="height"/>×<paramref name="width"/> images.</summary>
    public void Validate(int channels, int height, int width)
    {
        Validate();
        if (channels is not (1 or 3))
        {
            throw new InvalidTriggerException($"triggers apply to 1- or 3-channel images, got {channels} channels");
        }

        ValidateShape(channels, height, width);
    }

    protected abstract void ValidateShape(int channels, int height, int width);

    /// <summary>The triggered copy of every image of <paramref name="clean"/>, with its TRUE label (a defender's backdoor samples).</summary>
    public ImageDataset ApplyWithTrueLabels(ImageDataset clean) => new(ApplyTo(clean.Images), clean.Labels.clone());

    /// <summary>Applies the trigger to uint8 N×C×H×W images; returns a new uint8 tensor on the same device.</summary>
    public Tensor ApplyTo(Tensor images)
    {
        if (images.dtype != ScalarType.Byte || images.dim() != 4)
        {
            throw new ArgumentException($"expected uint8 N×C×H×W images, got {images.dtype} [{string.Join(',', images.shape)}]");
        }

        int c = (int)images.shape[1], h = (int)images.shape[2], w = (int)images.shape[3];
        Validate(c, h, w);
        using var scope = NewDisposeScope();
        var result = empty_like(images);
        var pattern = BuildPattern(c, h, w, images.device);
        for (long start = 0; start < images.shape[0]; start += BatchSize)
        {
            using var batchScope = NewDisposeScope();
            long len = Math.Min(BatchSize, images.shape[0] - start);
            result.narrow(0, start, len).copy_(Apply(images.narrow(0, start, len), pattern));
        }

        return result.MoveToOuterDisposeScope();
    }

    /// <summary>The trigger as a 1×C×H×W tensor for <see cref="Apply"/> (uint8 pattern or float64 signal).</summary>
    private protected abstract Tensor BuildPattern(int channels, int height, int width, Device device);

    /// <summary>Triggered uint8 batch from a uint8 batch and the pattern.</summary>
    private protected abstract Tensor Apply(Tensor batch, Tensor pattern);

    /// <summary>Clip to [0,255] then truncate to uint8, as <c>np.clip(...).astype(np.uint8)</c>.</summary>
    private protected static Tensor ClipTruncate(Tensor x) => x.clamp(0, 255).to_type(ScalarType.Byte);

    /// <summary>Decodes a base64 PNG/JPEG to uint8 1×C×H×W.</summary>
    private protected static Tensor DecodeImage(string base64, int channels, string what)
    {
        byte[] bytes;
        try
        {
            bytes = Convert.FromBase64String(base64);
        }
        catch (FormatException e)
        {
            throw new InvalidTriggerException($"{what} is not valid base64", e);
        }

        try
        {
            var (hwc, h, w) = ImageCodec.Decode(bytes, channels, DatasetReadLimits.Default, what);
            return tensor(hwc, [h, w, channels], ScalarType.Byte).permute(2, 0, 1).unsqueeze(0).contiguous();
        }
        catch (DatasetFileException e)
        {
            throw new InvalidTriggerException(e.Message, e);
        }
    }

    /// <summary>(Height, Width) of a base64 image, read from its header only.</summary>
    private protected static (int Height, int Width) ImageSize(string base64, string what)
    {
        try
        {
            using var ms = new MemoryStream(Convert.FromBase64String(base64));
            var info = StbImageSharp.ImageInfo.FromStream(ms) ?? throw new InvalidTriggerException($"{what} is not a PNG or JPEG image");
            return (info.Height, info.Width);
        }
        catch (FormatException e)
        {
            throw new InvalidTriggerException($"{what} is not valid base64", e);
        }
    }
}
