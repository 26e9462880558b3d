using System.Collections.Concurrent;

namespace WebDefense.Core.Models.Zoo;

/// <summary>A zoo architecture whose keys and shapes equal a state dict's, with what the shapes say.</summary>
/// <param name="HeadKey">The classifier's weight, whose output features give <paramref name="NumClasses"/>.</param>
/// <param name="StemKey">The first convolution's weight, whose input channels give <paramref name="InChannels"/>.</param>
public sealed record ArchitectureMatch(string Name, int NumClasses, int InChannels, string HeadKey, string StemKey);

/// <summary>
/// The outcome of matching a state dict against the zoo: the one architecture that fits, or (when none or several
/// fit) the nearest entry and what differs.
/// </summary>
public sealed record ZooMatchResult(ArchitectureMatch? Match, IReadOnlyList<ArchitectureMatch> Fits, string? Nearest, IReadOnlyList<string> Differences);

/// <summary>
/// Finds the architecture of a weights-only file by comparing its names and shapes with every zoo entry: the key set
/// (without <c>num_batches_tracked</c>, which old checkpoints lack) must be equal, and then every shape must equal
/// the entry's built with the file's class count (the last 2-D weight's rows) and input channels (the first 4-D
/// weight's second dimension).
/// </summary>
public static class ArchitectureMatcher
{
    private const int ListedDifferences = 6;
    private static readonly ConcurrentDictionary<(string Name, int Classes, int Channels), Dictionary<string, long[]>> Signatures = new();

    /// <summary>The TorchScript export a user can always fall back on, for messages.</summary>
    public const string TorchScriptHint =
        "any architecture can be uploaded as TorchScript, which carries its own code: in Python, with the model built and its " +
        "weights loaded, model.eval(); torch.jit.script(model).save('model.ts.pt') (or, if scripting fails, " +
        "torch.jit.trace(model, torch.rand(1, 3, 32, 32)).save('model.ts.pt') with an example input of your image size)";

    /// <summary>Matches against every zoo entry (the first call builds each entry once to learn its keys).</summary>
    public static ZooMatchResult Match(StateDict state) => Match(state, ModelZoo.Names.Select(n => n.Name));

    /// <summary>The match against one entry only, or null when it does not fit (cheap: builds only that entry).</summary>
    public static ArchitectureMatch? Fit(StateDict state, string name) => Match(state, [name]).Match;

    private static ZooMatchResult Match(StateDict state, IEnumerable<string> names)
    {
        ArgumentNullException.ThrowIfNull(state);
        var fileKeys = state.Keys.Where(Counted).ToHashSet(StringComparer.Ordinal);
        var fits = new List<ArchitectureMatch>();
        (string Name, double Score, IReadOnlyList<string> Differences)? nearest = null;
        foreach (var info in ModelZoo.Names.Where(n => names.Contains(n.Name)))
        {
            var canonical = Signature(info.Name, 10, 3);
            var keys = canonical.Keys.Where(Counted).ToHashSet(StringComparer.Ordinal);
            var stem = canonical.First(kv => kv.Value.Length == 4).Key;
            var head = canonical.Last(kv => kv.Value.Length == 2).Key;
            var differences = new List<string>();
            var missing = keys.Except(fileKeys).ToList();
            var unexpected = fileKeys.Except(keys).ToList();
            if (missing.Count > 0) differences.Add($"{missing.Count} key(s) the file lacks: {List(missing)}");
            if (unexpected.Count > 0) differences.Add($"{unexpected.Count} key(s) {info.Name} does not have: {List(unexpected)}");
            if (missing.Count == 0 && unexpected.Count == 0 && state[stem].dim() == 4 && state[head].dim() == 2)
            {
                var classes = (int)state[head].shape[0];
                var channels = (int)state[stem].shape[1];
                if (classes is >= 1 and <= 100_000 && channels is >= 1 and <= 64)
                {
                    var shapes = Signature(info.Name, classes, channels)
                        .Where(kv => Counted(kv.Key) && !kv.Value.SequenceEqual(state[kv.Key].shape))
                        .Select(kv => $"{kv.Key}: file [{string.Join(',', state[kv.Key].shape)}], {info.Name} [{string.Join(',', kv.Value)}]").ToList();
                    if (shapes.Count == 0)
                    {
                        fits.Add(new ArchitectureMatch(info.Name, classes, channels, head, stem));
                        continue;
                    }

                    differences.Add($"{shapes.Count} shape(s) differ: {List(shapes)}");
                }
            }

            var common = keys.Intersect(fileKeys).Count();
            var score = (double)common / (keys.Count + fileKeys.Count - common);
            if (nearest is null || score > nearest.Value.Score)
            {
                nearest = (info.Name, score, differences);
            }
        }

        return fits.Count == 1
            ? new ZooMatchResult(fits[0], fits, null, [])
            : new ZooMatchResult(null, fits, fits.Count > 1 ? null : nearest?.Name, fits.Count > 1 ? [] : nearest?.Differences ?? []);
    }

    /// <summary>The message for a file no zoo entry fits, naming the nearest entry, what differs, and the TorchScript road.</summary>
    public static string Explain(ZooMatchResult result)
    {
        if (result.Fits.Count > 1)
        {
            return $"the file fits several zoo architectures ({string.Join(", ", result.Fits.Select(f => f.Name))}); name one as 'architecture'";
        }

        var nearest = result.Nearest is null ? "" : $" The nearest is '{result.Nearest}': {string.Join("; ", result.Differences)}.";
        return $"the file's keys and shapes fit no zoo architecture ({string.Join(", ", ModelZoo.Names.Select(n => n.Name))}).{nearest} " +
               char.ToUpperInvariant(TorchScriptHint[0]) + TorchScriptHint[1..] + ".";
    }

    private static bool Counted(string key) => !key.EndsWith("num_batches_tracked", StringComparison.Ordinal);

    /// <summary>Key → shape of a zoo entry in PyTorch's order, built once per (name, classes, channels) and cached.</summary>
    private static Dictionary<string, long[]> Signature(string name, int classes, int channels) =>
        Signatures.GetOrAdd((name, classes, channels), k =>
        {
            using var model = ModelZoo.Create(k.Name, k.Classes, k.Channels);
            var result = new Dictionary<string, long[]>(StringComparer.Ordinal);
            foreach (var (key, tensor) in model.state_dict())
            {
                result[key] = tensor.shape;
            }

            return result;
        });

    private static string List(IReadOnlyList<string> items) =>
        string.Join(", ", items.Take(ListedDifferences)) + (items.Count > ListedDifferences ? $", … ({items.Count - ListedDifferences} more)" : string.Empty);
}
