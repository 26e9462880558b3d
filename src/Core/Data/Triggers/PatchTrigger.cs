using static TorchSharp.torch;

namespace WebDefense.Core.Data.Triggers;

/// <summary>
/// BadNets patch: x' = x·[t==0] + t·[t&gt;0] per pixel and channel, where t is black except the patch.
/// The patch is <see cref="Size"/>×<see cref="Size"/> (or <see cref="Width"/>×<see cref="Height"/>) of
/// <see cref="Color"/> (default white), or the decoded <see cref="Image"/> (base64 PNG, its own size).
/// Placed at <see cref="Position"/> ("bottom-right" default, "top-left", "top-right", "bottom-left",
/// "center") or at explicit <see cref="X"/>/<see cref="Y"/> (column/row of its top-left pixel).
/// Note: channels of the patch that are 0 leave the image unchanged (BackdoorBench's rule).
/// Default = BackdoorBench BadNets: 3×3 white, bottom-right corner.
/// </summary>
public sealed record PatchTrigger : TriggerSpec
{
    public static readonly string[] Positions = ["bottom-right", "top-left", "top-right", "bottom-left", "center"];

    public int? Size { get; init; }
    public int? Width { get; init; }
    public int? Height { get; init; }
    public string? Position { get; init; }
    public int? X { get; init; }
    public int? Y { get; init; }

    /// <summary>One value per channel (or one for all), 0–255; default white.</summary>
    public int[]? Color { get; init; }

    /// <summary>Base64 PNG/JPEG of the patch itself.</summary>
    public string? Image { get; init; }

    public static PatchTrigger BadNets => new();

    public override void Validate()
    {
        if (Image is not null && (Color is not null || Size is not null || Width is not null || Height is not null))
        {
            throw new InvalidTriggerException("a patch takes either an image or a size and color, not both");
        }

        if (Size is not null && (Width is not null || Height is not null))
        {
            throw new InvalidTriggerException("give a patch either size (square) or width and height, not both");
        }

        if ((Width is null) != (Height is null))
        {
            throw new InvalidTriggerException("give a patch both width and height");
        }

        if (Size is < 1 || Width is < 1 || Height is < 1)
        {
            throw new InvalidTriggerException("patch size must be at least 1 pixel");
        }

        if ((X is null) != (Y is null))
        {
            throw new InvalidTriggerException("give a patch both x and y, or neither");
        }

        if (X is not null && Position is not null)
        {
            throw new InvalidTriggerException("give a patch either a position or x and y, not both");
        }

        if (X is < 0 || Y is < 0)
        {
            throw new InvalidTriggerException("patch x and y must not be negative");
        }

        if (Position is not null && !Positions.Contains(Position))
        {
            throw new InvalidTriggerException($"patch position '{Position}' is not one of {string.Join(", ", Positions)}");
        }

        if (Color is not null)
        {
            if (Color.Length == 0 || Color.Any(v => v is < 0 or > 255))
            {
                throw new InvalidTriggerException("patch color needs one value per channel (or one for all), each 0–255");
            }

            if (Color.All(v => v == 0))
            {
                throw new InvalidTriggerException("a black patch has no effect: BadNets keeps the image where the trigger is 0");
            }
        }
    }

    private (int H, int W) PatchSize() =>
        Image is not null ? ImageSize(Image, "the patch image") : Size is { } s ? (s, s) : (Height ?? 3, Width ?? 3);

    private (int Row, int Col) Origin(int height, int width, int ph, int pw) => X is { } x
        ? (Y!.Value, x)
        : (Position ?? "bottom-right") switch
        {
            "top-left" => (0, 0),
            "top-right" => (0, width - pw),
            "bottom-left" => (height - ph, 0),
            "center" => ((height - ph) / 2, (width - pw) / 2),
            _ => (height - ph, width - pw),
        };

    protected override void ValidateShape(int channels, int height, int width)
    {
        var (ph, pw) = PatchSize();
        var (r, c) = Origin(height, width, ph, pw);
        if (ph > height || pw > width || r < 0 || c < 0 || r + ph > height || c + pw > width)
        {
            throw new InvalidTriggerException($"a {pw}×{ph} patch at column {c}, row {r} does not fit in {width}×{height} images");
        }

        if (Color is not null && Color.Length != 1 && Color.Length != channels)
        {
            throw new InvalidTriggerException($"patch color has {Color.Length} values but the images have {channels} channels");
        }
    }

    private protected override Tensor BuildPattern(int channels, int height, int width, Device device)
    {
        var (ph, pw) = PatchSize();
        var (r, c) = Origin(height, width, ph, pw);
        var t = zeros([1, channels, height, width], ScalarType.Byte);
        Tensor patch;
        if (Image is not null)
        {
            patch = DecodeImage(Image, channels, "the patch image");
        }
        else
        {
            var color = Color ?? [255];
            var values = Enumerable.Range(0, channels).Select(ch => (byte)color[color.Length == 1 ? 0 : ch]).ToArray();
            patch = tensor(values, [1, channels, 1, 1], ScalarType.Byte).expand(1, channels, ph, pw);
        }

        t.narrow(2, r, ph).narrow(3, c, pw).copy_(patch);
        return t.to(device);
    }

    private protected override Tensor Apply(Tensor batch, Tensor pattern) =>
        where(pattern.gt(0).expand_as(batch), pattern.expand_as(batch), batch);
}
