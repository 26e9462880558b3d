using System.Buffers.Binary;
using System.IO.Compression;

namespace WebDefense.Core.Models.Serialization;

/// <summary>Sniffs which <see cref="ModelFileFormat"/> a file is, without reading its tensors.</summary>
public static class ModelFormatDetector
{
    /// <summary>
    /// zip + <c>*/data.pkl</c> without <c>code/</c> → PyTorchStateDict; zip with <c>code/</c> or <c>constants.pkl</c>
    /// → TorchScript; 8-byte LE length followed by '{' → Safetensors; a plausible LEB128 count followed by a valid
    /// name → TorchSharp; torch.save's magic number pickle → PyTorchLegacy. Anything else → <see cref="ModelFileException"/>.
    /// The stream must be seekable; its position is restored.
    /// </summary>
    public static ModelFileFormat Detect(Stream stream)
    {
        if (!stream.CanSeek)
        {
            throw new ArgumentException("format detection needs a seekable stream", nameof(stream));
        }

        var start = stream.Position;
        try
        {
            var head = new byte[16];
            var n = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
            stream.Position = start;
            if (n >= 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4)
            {
                return DetectZip(stream);
            }

            if (PyTorchLegacyCheckpoint.HasMagic(head.AsSpan(0, n)))
            {
                return ModelFileFormat.PyTorchLegacy;
            }

            if (n >= 2 && head[0] == 0x80 && head[1] <= 5)
            {
                throw new ModelFileException(
                    "file is a Python pickle without torch.save's magic number, so it is not a PyTorch checkpoint; " +
                    "save the weights with torch.save(model.state_dict(), f) or export the model with torch.jit.script(model).save(f)");
            }

            if (n >= 9 && head[8] == '{')
            {
                var len = BinaryPrimitives.ReadUInt64LittleEndian(head);
                if (len >= 2 && len <= 100_000_000 && (ulong)(stream.Length - start) >= 8 + len)
                {
                    return ModelFileFormat.Safetensors;
                }
            }

            if (LooksLikeTorchSharp(stream))
            {
                return ModelFileFormat.TorchSharp;
            }

            throw new ModelFileException("unknown model file format (not a PyTorch zip, safetensors, TorchScript or TorchSharp file)");
        }
        finally
        {
            stream.Position = start;
        }
    }

    private static ModelFileFormat DetectZip(Stream stream)
    {
        try
        {
            using var zip = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true);
            var names = zip.Entries.Select(e => e.FullName).ToList();
            if (names.Any(n => n.Contains("/code/", StringComparison.Ordinal) || n.EndsWith("/constants.pkl", StringComparison.Ordinal)))
            {
                return ModelFileFormat.TorchScript;
            }

            if (names.Any(n => n.EndsWith("/data.pkl", StringComparison.Ordinal)))
            {
                return ModelFileFormat.PyTorchStateDict;
            }

            throw new ModelFileException("zip archive is not a PyTorch checkpoint (no */data.pkl entry)");
        }
        catch (InvalidDataException e)
        {
            throw new ModelFileException($"zip archive is damaged or truncated: {e.Message}", e);
        }
    }

    private static bool LooksLikeTorchSharp(Stream stream)
    {
        try
        {
            var count = TorchSharpStateFile.ReadLeb(stream, "entry count");
            if (count is < 1 or > 10_000_000)
            {
                return false;
            }

            var name = TorchSharpStateFile.ReadName(stream, ModelReadLimits.Default);
            return name.All(c => !char.IsControl(c));
        }
        catch (ModelFileException)
        {
            return false;
        }
    }
}
