using System.Globalization;

namespace WebDefense.Experiments;

/// <summary>--key value pairs from the command line, with typed getters and defaults.</summary>
internal sealed class ExperimentOptions(Dictionary<string, string> values)
{
    public static ExperimentOptions Parse(string[] args)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
            {
                throw new ArgumentException($"expected --key value, got '{args[i]}'");
            }

            values[args[i][2..]] = args[++i];
        }

        return new ExperimentOptions(values);
    }

    public int Int(string key, int fallback) => values.TryGetValue(key, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
    public double Number(string key, double fallback) => values.TryGetValue(key, out var v) ? double.Parse(v, CultureInfo.InvariantCulture) : fallback;
    public string Text(string key, string fallback) => values.GetValueOrDefault(key, fallback);
}
