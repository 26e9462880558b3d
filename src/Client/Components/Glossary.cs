namespace WebDefense.Client.Components;

/// <summary>One word of the dashboard: what it measures, which way is better, and its unit.</summary>
public sealed record GlossaryEntry(string Term, string Name, string Measures, string Better, string Unit)
{
    /// <summary>The anchor of the entry on the glossary page, e.g. "asr".</summary>
    public string Anchor => Term.ToLowerInvariant();

    /// <summary>The one-line version, for tooltips and accessible names.</summary>
    public string Short => $"{Name}: {Better}";
}

/// <summary>The words behind every metric the dashboard shows; each metric links to its entry.</summary>
public static class Glossary
{
    public static readonly IReadOnlyList<GlossaryEntry> Entries =
    [
        new("ACC", "clean accuracy",
            "The share of the clean test images the model labels correctly. A defense should keep it: a model that lost its clean accuracy is no use, whatever happened to the backdoor.",
            "higher is better", "percent of the clean test images"),
        new("ASR", "attack success rate",
            "The share of triggered test images (images whose true label is not the attack's target, with the trigger stamped on) that the model labels as the target. It is how well the backdoor still works.",
            "lower is better; near 0% means the trigger no longer works", "percent of the triggered non-target test images"),
        new("RA", "recovery accuracy",
            "The share of the same triggered test images that the model labels with their true label: the model sees through the trigger instead of merely refusing the target.",
            "higher is better", "percent of the triggered non-target test images"),
        new("DER", "defense effectiveness rating",
            "One number for the trade-off, as BackdoorBench defines it: [max(0, ΔASR) − max(0, ΔACC) + 1] / 2, where ΔASR is how much ASR fell and ΔACC how much clean accuracy fell (both as fractions).",
            "higher is better; 1 is best (ASR gone, no accuracy lost), 0.5 means nothing changed", "a number from 0 to 1"),
        new("pp", "percentage points",
            "The difference between two percentages: ASR from 97.20% to 1.20% is −96.00 pp. Changes are written in points, not in percent of the old value.",
            "depends on the metric: ACC and RA up, ASR down", "points on the 0–100% scale"),
        new("Val", "validation",
            "Metrics measured during the run on the slice of your clean data the defense held out (and its triggered copies): what the defense sees when it chooses how far to prune or which epoch to keep. Never the test sets.",
            "the same directions as the test metrics", "percent of the held-out images"),
    ];

    public static GlossaryEntry? Find(string term) =>
        Entries.FirstOrDefault(e => string.Equals(e.Term, term, StringComparison.OrdinalIgnoreCase));
}
