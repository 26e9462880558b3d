using System.Globalization;
using System.Text.Json;

namespace WebDefense.Client.Components;

/// <summary>How the dashboard writes numbers: metrics are fractions on the wire and percent on screen.</summary>
public static class Format
{
    public static string Percent(double? fraction) => fraction is { } f ? (f * 100).ToString("0.00", CultureInfo.InvariantCulture) + "%" : "–";

    /// <summary>A change in percentage points with its sign, e.g. "−2.16 pp".</summary>
    public static string Points(double? before, double? after) =>
        before is { } b && after is { } a ? ((a - b) * 100).ToString("+0.00;−0.00;0.00", CultureInfo.InvariantCulture) + " pp" : "";

    public static string Duration(double? seconds) => seconds switch
    {
        null => "–",
        < 60 => $"{seconds.Value:0.#} s",
        < 3600 => $"{Math.Floor(seconds.Value / 60):0} min {seconds.Value % 60:00} s",
        _ => $"{Math.Floor(seconds.Value / 3600):0} h {seconds.Value % 3600 / 60:00} min",
    };

    public static string Bytes(long bytes) => bytes switch
    {
        < 1024 => $"{bytes} B",
        < 1024 * 1024 => $"{bytes / 1024.0:0.#} KiB",
        _ => $"{bytes / 1024.0 / 1024:0.#} MiB",
    };

    public static string Json(JsonElement? value) => value is { } v ? v.ValueKind switch
    {
        JsonValueKind.String => v.GetString() ?? "",
        JsonValueKind.Number => v.TryGetInt64(out var i) ? i.ToString(CultureInfo.InvariantCulture) : v.GetDouble().ToString("0.####", CultureInfo.InvariantCulture),
        JsonValueKind.True => "true",
        JsonValueKind.False => "false",
        JsonValueKind.Null or JsonValueKind.Undefined => "–",
        _ => v.GetRawText(),
    } : "–";

    public static string Short(Guid id) => id.ToString("N")[..8];
}
