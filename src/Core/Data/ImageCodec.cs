using StbImageSharp;
using static TorchSharp.torch;

namespace WebDefense.Core.Data;

/// <summary>PNG/JPEG decode (size checked from the header before decoding), bilinear resize, PNG encode.</summary>
public static class ImageCodec
{
    /// <summary>
    /// Decodes a PNG/JPEG/BMP/GIF/TGA file to H×W×C bytes with <paramref name="channels"/> = 1 (grey) or 3 (RGB).
    /// The header's dimensions are checked against <paramref name="limits"/> before any pixel is decoded.
    /// </summary>
    public static (byte[] Hwc, int Height, int Width) Decode(byte[] file, int channels, DatasetReadLimits limits, string name)
    {
        if (channels is not (1 or 3))
        {
            throw new ArgumentOutOfRangeException(nameof(channels), channels, "1 or 3 channels");
        }

        ImageInfo? info;
        try
        {
            using var ms = new MemoryStream(file, writable: false);
            info = ImageInfo.FromStream(ms);
        }
        catch (Exception e)
        {
            throw new DatasetFileException($"{name} is not a readable image ({e.Message})", e);
        }

        if (info is not { } i)
        {
            throw new DatasetFileException($"{name} is not a PNG or JPEG image");
        }

        limits.CheckImageSize(i.Height, i.Width, name);
        ImageResult img;
        try
        {
            img = ImageResult.FromMemory(file, channels == 1 ? ColorComponents.Grey : ColorComponents.RedGreenBlue);
        }
        catch (Exception e)
        {
            throw new DatasetFileException($"{name} could not be decoded ({e.Message})", e);
        }

        if (img.Width != i.Width || img.Height != i.Height || img.Data.Length != (long)img.Width * img.Height * channels)
        {
            throw new DatasetFileException($"{name} decoded to an unexpected size");
        }

        return (img.Data, img.Height, img.Width);
    }

    /// <summary>
    /// Bilinear resize of uint8 C×H×W (or N×C×H×W) pixels: half-pixel centres, no antialiasing
    /// (torch <c>interpolate(mode="bilinear", align_corners=False)</c>), rounded to the nearest integer.
    /// </summary>
    public static Tensor Resize(Tensor pixels, int height, int width)
    {
        using var scope = NewDisposeScope();
        bool single = pixels.dim() == 3;
        var x = (single ? pixels.unsqueeze(0) : pixels).to_type(ScalarType.Float32);
        if (x.shape[2] == height && x.shape[3] == width)
        {
            return pixels.clone().MoveToOuterDisposeScope();
        }

        var y = nn.functional.interpolate(x, [height, width], mode: InterpolationMode.Bilinear, align_corners: false);
        y = y.round().clamp(0, 255).to_type(ScalarType.Byte);
        return (single ? y.squeeze(0) : y).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>Encodes uint8 C×H×W pixels (C = 1 or 3) as PNG.</summary>
    public static byte[] EncodePng(Tensor chw)
    {
        if (chw.dtype != ScalarType.Byte || chw.dim() != 3 || chw.shape[0] is not (1 or 3))
        {
            throw new ArgumentException($"expected uint8 C×H×W with 1 or 3 channels, got {chw.dtype} [{string.Join(',', chw.shape)}]");
        }

        int c = (int)chw.shape[0], h = (int)chw.shape[1], w = (int)chw.shape[2];
        byte[] hwc;
        using (var scope = NewDisposeScope())
        {
            hwc = chw.cpu().permute(1, 2, 0).contiguous().data<byte>().ToArray();
        }

        using var ms = new MemoryStream();
        new StbImageWriteSharp.ImageWriter().WritePng(hwc, w, h, c == 1 ? StbImageWriteSharp.ColorComponents.Grey : StbImageWriteSharp.ColorComponents.RedGreenBlue, ms);
        return ms.ToArray();
    }
}
