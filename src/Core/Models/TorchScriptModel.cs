using System.IO.Compression;
using TorchSharp;
using static TorchSharp.torch;

namespace WebDefense.Core.Models;

/// <summary>
/// What an archive's serialized code says about train/eval behaviour.
/// </summary>
/// <param name="Entries">Number of zip entries.</param>
/// <param name="CodeFiles">Number of <c>code/*.py</c> files.</param>
/// <param name="ReferencesTrainingFlag">Whether any code file reads <c>self.training</c>. Scripted modules
/// with BatchNorm or Dropout do; traced ones never do (their mode is baked in when traced), and neither do
/// models without mode-dependent layers.</param>
public sealed record TorchScriptArchiveInfo(int Entries, int CodeFiles, bool ReferencesTrainingFlag);

/// <summary>
/// Loading and saving TorchScript archives (<c>torch.jit.script(m).save(...)</c>) as TorchSharp script modules.
/// <para>
/// Pitfalls handled here (torch-runtime.md §C): <c>torch.jit.save(module, byte[])</c> writes nothing, so
/// saving always goes through a temporary file that is then moved into place; archives are checked to be
/// a zip with TorchScript code before the native loader sees them, and any failure becomes a
/// <see cref="ModelFileException"/>.
/// </para>
/// <para>
/// <b>Traced modules ignore train()/eval()</b>: BN and dropout behave as when traced (usually eval), so
/// fine-tuning defenses cannot train them properly. <see cref="Inspect"/> reports whether the code reads
/// <c>self.training</c>; when a model has BN layers but the code never reads the flag, it was traced
/// (see <see cref="LooksTraced"/>). Export models with <c>torch.jit.script</c>.
/// </para>
/// </summary>
public static class TorchScriptModel
{
    /// <summary>Largest archive accepted (bytes).</summary>
    public const long MaxArchiveBytes = 2L * 1024 * 1024 * 1024;

    /// <summary>Loads a TorchScript archive; the module is returned in eval mode.</summary>
    /// <exception cref="ModelFileException">Missing, not a zip, not TorchScript (e.g. a plain state dict), truncated or corrupt.</exception>
    public static jit.ScriptModule<Tensor, Tensor> Load(string path, DeviceType device = DeviceType.CPU, long deviceIndex = -1)
    {
        var info = Inspect(path, verifyChecksums: true);
        if (info.CodeFiles == 0)
        {
            throw new ModelFileException(
                $"'{Path.GetFileName(path)}' is a zip archive but not TorchScript (no code/ entries; a torch.save state dict? export with torch.jit.script(model).save(path))");
        }

        try
        {
            var module = jit.load<Tensor, Tensor>(path, device, deviceIndex);
            module.eval();
            return module;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new ModelFileException($"'{Path.GetFileName(path)}' could not be loaded as TorchScript: {FirstLine(e.Message)}", e);
        }
    }

    /// <summary>
    /// Loads an archive already checked by <see cref="Load(string, DeviceType, long)"/> from its bytes in memory (a
    /// classifier's clones are made from these, with no temporary file); the module is returned in eval mode.
    /// </summary>
    public static jit.ScriptModule<Tensor, Tensor> LoadChecked(byte[] archive)
    {
        var module = jit.load<Tensor, Tensor>(archive, DeviceType.CPU, -1);
        module.eval();
        return module;
    }

    /// <summary>
    /// Reads an archive's directory and code without executing anything. With <paramref name="verifyChecksums"/>
    /// every entry's CRC-32 is checked (libtorch's loader does not, and silently loads corrupted tensor data).
    /// </summary>
    /// <exception cref="ModelFileException">Missing, too large, not a zip, corrupt, or unreadable.</exception>
    public static TorchScriptArchiveInfo Inspect(string path, bool verifyChecksums = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var file = new FileInfo(path);
        if (!file.Exists)
        {
            throw new ModelFileException($"model file '{file.Name}' does not exist");
        }

        if (file.Length > MaxArchiveBytes)
        {
            throw new ModelFileException($"'{file.Name}' is {file.Length:N0} bytes, more than the {MaxArchiveBytes:N0} allowed");
        }

        try
        {
            using var zip = ZipFile.OpenRead(path);
            int code = 0;
            bool training = false;
            foreach (var entry in zip.Entries)
            {
                if (verifyChecksums && Crc32(entry) != entry.Crc32)
                {
                    throw new InvalidDataException($"checksum mismatch in entry '{entry.FullName}'");
                }

                var name = entry.FullName;
                var slash = name.IndexOf('/');
                var inner = slash >= 0 ? name[(slash + 1)..] : name;
                if (!inner.StartsWith("code/", StringComparison.Ordinal) || !inner.EndsWith(".py", StringComparison.Ordinal))
                {
                    continue;
                }

                code++;
                if (!training && entry.Length < 64L * 1024 * 1024)
                {
                    using var reader = new StreamReader(entry.Open());
                    training = reader.ReadToEnd().Contains("self.training", StringComparison.Ordinal);
                }
            }

            return new TorchScriptArchiveInfo(zip.Entries.Count, code, training);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            throw new ModelFileException($"'{file.Name}' is not a readable zip/TorchScript archive (truncated or corrupt?): {FirstLine(e.Message)}", e);
        }
    }

    /// <summary>
    /// True when the module has BatchNorm/Dropout-like state (BN buffers) but its code never reads
    /// <c>self.training</c>: a traced module, whose BN will not switch to train mode.
    /// </summary>
    public static bool LooksTraced(string path, jit.ScriptModule module)
    {
        ArgumentNullException.ThrowIfNull(module);
        var hasBn = module.named_buffers().Any(b => b.name.EndsWith("running_mean", StringComparison.Ordinal));
        return hasBn && !Inspect(path).ReferencesTrainingFlag;
    }

    /// <summary>
    /// Saves a script module to <paramref name="path"/> via a temporary file in the same folder that is moved
    /// into place (so a reader never sees a half-written archive). Overwrites an existing file.
    /// </summary>
    /// <exception cref="ModelFileException">Saving failed or produced an empty file.</exception>
    public static void Save(jit.ScriptModule module, string path)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentException.ThrowIfNullOrEmpty(path);
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full) ?? ".";
        Directory.CreateDirectory(dir);
        var tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            jit.save(module, tmp);
            var written = new FileInfo(tmp);
            if (!written.Exists || written.Length == 0)
            {
                throw new ModelFileException($"saving TorchScript to '{Path.GetFileName(full)}' produced no data");
            }

            File.Move(tmp, full, overwrite: true);
        }
        catch (Exception e) when (e is not ModelFileException and not OutOfMemoryException)
        {
            throw new ModelFileException($"could not save TorchScript to '{Path.GetFileName(full)}': {FirstLine(e.Message)}", e);
        }
        finally
        {
            if (File.Exists(tmp))
            {
                File.Delete(tmp);
            }
        }
    }

    private static readonly uint[] CrcTable = Enumerable.Range(0, 256).Select(n =>
    {
        var c = (uint)n;
        for (var k = 0; k < 8; k++)
        {
            c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        }

        return c;
    }).ToArray();

    private static uint Crc32(ZipArchiveEntry entry)
    {
        var crc = 0xFFFFFFFFu;
        var buffer = new byte[81920];
        using var stream = entry.Open();
        int read;
        while ((read = stream.Read(buffer, 0, buffer.Length)) > 0)
        {
            for (var i = 0; i < read; i++)
            {
                crc = CrcTable[(crc ^ buffer[i]) & 0xFF] ^ (crc >> 8);
            }
        }

        return crc ^ 0xFFFFFFFFu;
    }

    private static string FirstLine(string message)
    {
        var i = message.IndexOf('\n');
        return i < 0 ? message : message[..i].TrimEnd();
    }
}
