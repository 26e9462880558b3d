using System.Text.RegularExpressions;

namespace WebDefense.Core.Runtime;

/// <summary>What libtorch's exception messages say, without their tracebacks and C++ backtraces.</summary>
public static partial class TorchErrors
{
    /// <summary>
    /// The cause of a libtorch error in one line. A TorchScript interpreter error starts with "The following operation
    /// failed in the TorchScript interpreter." and ends, after two tracebacks, with the Python-style cause
    /// ("RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x512 and 400x120)"): that last cause is returned,
    /// without its "RuntimeError: " prefix. Other errors give their first line, without the "Exception raised from"
    /// backtrace.
    /// </summary>
    public static string Cause(string message)
    {
        var lines = message.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (lines.Length == 0) return message.Trim();
        var cause = lines.LastOrDefault(l => PythonError().IsMatch(l));
        if (cause is not null) return PythonError().Replace(cause, "", 1);
        var first = lines[0];
        var backtrace = first.IndexOf("Exception raised from", StringComparison.Ordinal);
        return (backtrace > 0 ? first[..backtrace] : first).Trim();
    }

    [GeneratedRegex(@"^(?:[A-Za-z_.]+\.)?[A-Z][A-Za-z]*(?:Error|Exception): ")]
    private static partial Regex PythonError();
}
