using System.Text.RegularExpressions;
using WebDefense.Core.Scanning;

namespace WebDefense.Server.Jobs;

/// <summary>The artifacts of a scan: scan.json and per label trigger-N-mask.png, trigger-N-pattern.png, trigger-N-example.png.</summary>
public static partial class ScanArtifact
{
    public static bool IsValid(string name) => name == ScanReport.FileName || ImageName().IsMatch(name);

    /// <summary>The artifact kind: "scan/" + the file name.</summary>
    public static string Kind(string name) => "scan/" + name;

    [GeneratedRegex(@"^trigger-[0-9]{1,4}-(mask|pattern|example)\.png$")]
    private static partial Regex ImageName();
}
