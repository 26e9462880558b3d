namespace WebDefense.Core.Models;

/// <summary>
/// What a reader found around the state dict in a checkpoint: the container it was unwrapped from (e.g.
/// <c>state_dict</c>, or null when the file is the state dict itself), the key prefixes stripped from every name
/// (DataParallel's <c>module.</c> …) and the entries it ignored (<c>epoch (int 29)</c>, <c>optimizer (dict of 2 entries)</c> …).
/// </summary>
public sealed record CheckpointContents(string? Container, IReadOnlyList<string> StrippedPrefixes, IReadOnlyList<string> Ignored)
{
    /// <summary>A file that is a bare state dict: nothing unwrapped, stripped or ignored.</summary>
    public static CheckpointContents Plain { get; } = new(null, [], []);
}
