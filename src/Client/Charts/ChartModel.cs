using System.Globalization;

namespace WebDefense.Client.Charts;

/// <summary>One line (or point cloud) of a chart.</summary>
public sealed record ChartSeries(string Name, string Color, IReadOnlyList<ChartPoint> Points, bool Dashed = false);

/// <summary>A data point; <see cref="Label"/> is shown as its tooltip.</summary>
public sealed record ChartPoint(double X, double Y, string? Label = null);

/// <summary>A vertical marker line at <see cref="X"/> (e.g. the chosen operating point).</summary>
public sealed record ChartMarker(double X, string Label);

/// <summary>A linear map from data to pixels with "nice" tick values (1, 2, 2.5 or 5 × 10^k steps).</summary>
public sealed record LinearScale(double Min, double Max, double PixelFrom, double PixelTo)
{
    public double Map(double value) => Max == Min
        ? (PixelFrom + PixelTo) / 2
        : PixelFrom + (value - Min) / (Max - Min) * (PixelTo - PixelFrom);

    /// <summary>Data bounds widened to nice round numbers; a single value gets a unit-wide range.</summary>
    public static (double Min, double Max) NiceBounds(double min, double max)
    {
        if (double.IsNaN(min) || double.IsNaN(max) || double.IsInfinity(min) || double.IsInfinity(max)) return (0, 1);
        if (max < min) (min, max) = (max, min);
        if (max == min) return (min - 0.5, max + 0.5);
        var step = NiceStep((max - min) / 5);
        return (Math.Floor(min / step) * step, Math.Ceiling(max / step) * step);
    }

    public static double NiceStep(double rough)
    {
        if (rough <= 0 || double.IsNaN(rough)) return 1;
        var magnitude = Math.Pow(10, Math.Floor(Math.Log10(rough)));
        var fraction = rough / magnitude;
        var nice = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 2.5 ? 2.5 : fraction <= 5 ? 5 : 10;
        return nice * magnitude;
    }

    /// <summary>About <paramref name="count"/> ticks covering [Min, Max] on multiples of a nice step.</summary>
    public IReadOnlyList<double> Ticks(int count = 5)
    {
        if (Max <= Min) return [Min];
        var step = NiceStep((Max - Min) / Math.Max(1, count));
        var first = Math.Ceiling(Min / step - 1e-9) * step;
        var ticks = new List<double>();
        for (var t = first; t <= Max + step * 1e-9; t += step) ticks.Add(Math.Round(t, 10));
        return ticks;
    }

    public static string Format(double value) =>
        Math.Abs(value) < 1e-9 ? "0" : Math.Abs(value - Math.Round(value)) < 1e-9 ? Math.Round(value).ToString(CultureInfo.InvariantCulture) : value.ToString("0.##", CultureInfo.InvariantCulture);
}

/// <summary>Colours that stay readable on light and dark backgrounds, one per series or run.</summary>
public static class ChartPalette
{
    public const string Acc = "#2e7d32";
    public const string Asr = "#c62828";
    public const string Ra = "#1565c0";
    // Each at least 4.5:1 on white, as text (the legend chips) and as lines.
    private static readonly string[] Runs = ["#1565c0", "#c62828", "#2e7d32", "#a04000", "#6a1b9a", "#00727d", "#ad1457", "#5d4037", "#546e7a", "#6b6b00"];

    public static string ForRun(int index) => Runs[index % Runs.Length];
}
