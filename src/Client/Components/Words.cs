using System.Globalization;
using System.Text.Json;

namespace WebDefense.Client.Components;

/// <summary>
/// Human names for what the API names in snake_case (parameters, findings) or PascalCase (needs): "samples_per_class"
/// reads "Samples per class", "lr_un" "Learning rate (unlearning)". The API name stays beside it where a user may type it.
/// </summary>
public static class Words
{
    /// <summary>Words that are abbreviations or acronyms, written out or capitalised.</summary>
    private static readonly Dictionary<string, string> Known = new(StringComparer.Ordinal)
    {
        ["lr"] = "learning rate", ["acc"] = "ACC", ["asr"] = "ASR", ["ra"] = "RA", ["der"] = "DER", ["val"] = "validation",
        ["bn"] = "BN", ["ft"] = "fine-tuning", ["un"] = "unlearning", ["nb"] = "number of", ["iter"] = "iterations",
        ["anp"] = "ANP", ["rnp"] = "RNP", ["clp"] = "CLP", ["nad"] = "NAD", ["sam"] = "SAM", ["pgd"] = "PGD", ["kl"] = "KL",
        ["eps"] = "ε", ["u"] = "u", ["m"] = "m", ["r"] = "r", ["pct"] = "percent", ["num"] = "number of", ["max"] = "max.",
        ["min"] = "min.", ["std"] = "std.", ["ids"] = "IDs", ["id"] = "ID", ["px"] = "px", ["wd"] = "weight decay",
    };

    /// <summary>Whole names whose words alone would read badly.</summary>
    private static readonly Dictionary<string, string> Whole = new(StringComparer.Ordinal)
    {
        ["lr_un"] = "Learning rate (unlearning)", ["lr_ft"] = "Learning rate (fine-tuning)", ["nb_iter"] = "Iterations",
        ["anp_eps"] = "Perturbation bound ε", ["anp_steps"] = "Perturbation steps", ["anp_alpha"] = "Trade-off α",
        ["alpha"] = "α", ["u"] = "Threshold u", ["m"] = "Share of weights zeroed m", ["r"] = "Probe radius r", ["rho"] = "Radius ρ",
        ["eps"] = "ε", ["epsilon"] = "ε", ["u_min"] = "Smallest u", ["u_max"] = "Largest u", ["u_num"] = "Number of u values",
        ["chosen_u"] = "Chosen u",
    };

    /// <summary>"samples_per_class" → "Samples per class".</summary>
    public static string Parameter(string name)
    {
        if (Whole.TryGetValue(name, out var whole)) return whole;
        var words = name.Split('_', StringSplitOptions.RemoveEmptyEntries).Select(w => Known.GetValueOrDefault(w, w)).ToList();
        if (words.Count == 0) return name;
        var text = string.Join(' ', words);
        return char.IsLower(text[0]) ? char.ToUpper(text[0], CultureInfo.InvariantCulture) + text[1..] : text;
    }

    /// <summary>"CleanData" → "clean data".</summary>
    public static string Need(string need) => need switch
    {
        "CleanData" => "clean data",
        "BackdoorSamples" => "backdoor samples (triggered images or a trigger)",
        "TrainingSet" => "the untrusted training set",
        _ => string.Concat(need.Select((c, i) => i > 0 && char.IsUpper(c) ? " " + char.ToLowerInvariant(c) : char.ToLowerInvariant(c).ToString())),
    };

    /// <summary>
    /// A finding's value as the dashboard writes metrics: a fraction named like a metric (…acc, …asr, …ra, …share) in
    /// percent, everything else as the API sent it.
    /// </summary>
    public static string Finding(string name, JsonElement value)
    {
        if (value.ValueKind == JsonValueKind.Number && IsFraction(name) && value.GetDouble() is var f && f is >= 0 and <= 1)
        {
            return Format.Percent(f);
        }

        return Format.Json(value);
    }

    private static bool IsFraction(string name)
    {
        var last = name.Split('_').Last();
        return last is "acc" or "asr" or "ra" or "share" || name.EndsWith("_rate", StringComparison.Ordinal);
    }
}
