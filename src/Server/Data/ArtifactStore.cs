using System.Security.Cryptography;
using Microsoft.Extensions.Options;
using WebDefense.Server.Hosting;

namespace WebDefense.Server.Data;

/// <summary>Files under DataDirectory/artifacts, named by their SHA-256 (plus the original extension).</summary>
public sealed class ArtifactStore(IOptions<WebDefenseOptions> options)
{
    private readonly string _root = options.Value.ArtifactsPath;

    public string PathOf(string storedName) => Path.Combine(_root, Path.GetFileName(storedName));

    public static string Hash(string path)
    {
        using var s = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(s));
    }

    /// <summary>Moves (or copies) a file into the store; returns its stored name.</summary>
    public string Add(string path, string sha256, string originalName, bool move)
    {
        Directory.CreateDirectory(_root);
        var ext = SafeExtension(originalName);
        var storedName = sha256 + ext;
        var target = PathOf(storedName);
        if (File.Exists(target))
        {
            if (move) File.Delete(path);
            return storedName;
        }

        // Several processes may store the same content at once (a shared artifacts folder): write a private copy,
        // then rename it into place; the name is the content's hash, so whichever rename lands last is the same file.
        var temp = Path.Combine(_root, $".{storedName}.{Guid.NewGuid():N}.tmp");
        if (move) File.Move(path, temp);
        else File.Copy(path, temp);
        File.Move(temp, target, overwrite: true);
        return storedName;
    }

    public void DeleteIfUnused(string storedName, bool stillUsed)
    {
        if (!stillUsed) File.Delete(PathOf(storedName));
    }

    public static string SafeExtension(string name)
    {
        var lower = name.ToLowerInvariant();
        foreach (var double_ in new[] { ".ts.pt", ".tar.gz" })
        {
            if (lower.EndsWith(double_, StringComparison.Ordinal)) return double_;
        }

        var ext = Path.GetExtension(lower);
        return ext.Length is > 1 and <= 12 && ext[1..].All(char.IsAsciiLetterOrDigit) ? ext : "";
    }
}
