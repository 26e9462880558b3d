using System.Globalization;
using WebDefense.Client.Charts;
using WebDefense.Client.Components;

namespace WebDefense.Client.Tests;

public sealed class ChartTests : DashboardTest
{
    [Theory]
    [InlineData(0.7, 1)]
    [InlineData(1.3, 2)]
    [InlineData(2.2, 2.5)]
    [InlineData(3, 5)]
    [InlineData(7, 10)]
    [InlineData(0.013, 0.02)]
    [InlineData(180, 200)]
    public void Nice_steps_are_one_two_two_and_a_half_or_five_times_a_power_of_ten(double rough, double expected) =>
        Assert.Equal(expected, LinearScale.NiceStep(rough), 9);

    [Fact]
    public void Ticks_cover_the_range_on_multiples_of_the_step()
    {
        var ticks = new LinearScale(0, 100, 0, 300).Ticks(5);
        Assert.Equal([0d, 20, 40, 60, 80, 100], ticks);
        Assert.Equal((0d, 125d), LinearScale.NiceBounds(3, 112));
        Assert.Equal((4.5, 5.5), LinearScale.NiceBounds(5, 5));
        Assert.Equal("0", LinearScale.Format(-1e-12));
    }

    [Fact]
    public void The_rnp_trajectory_opens_on_the_prune_sweep_with_the_chosen_point_marked()
    {
        var run = Fixtures.RnpRun;
        var points = Fixtures.RnpTrajectory;
        var chart = Render<TrajectoryChart>(p => p
            .Add(c => c.Points, points).Add(c => c.ChosenX, run.ChosenX).Add(c => c.ChosenRule, run.ChosenRule));

        // Two phases (unlearning epochs, then the prune sweep); the sweep is shown first, with ACC, ASR and RA.
        Assert.Equal(["unlearn", "prune"], TrajectoryView.Phases(points));
        Assert.Contains("channels pruned", chart.Find("[data-testid=trajectory-chart]").TextContent);
        Assert.Equal(3, chart.FindAll("polyline").Count);
        Assert.Equal(points.Count(p => p.Phase == "prune" && p.ValAcc is not null), chart.FindAll("g[data-series=ACC] circle").Count);

        var marker = chart.Find("g.marker");
        Assert.Equal("0", marker.GetAttribute("data-x"));
        Assert.Contains(run.ChosenRule!, chart.Find("[data-testid=chosen-rule]").TextContent);

        // The marker belongs to the sweep: the unlearning epochs have none.
        chart.FindAll(".mud-chip").Single(c => c.TextContent.Contains("unlearn")).Click();
        Assert.Contains("unlearning epoch", chart.Find("[data-testid=trajectory-chart]").TextContent);
        Assert.Empty(chart.FindAll("g.marker"));
    }

    [Fact]
    public void Higher_values_are_drawn_higher_and_the_legend_hides_a_series()
    {
        var series = new[]
        {
            new ChartSeries("ACC", ChartPalette.Acc, [new ChartPoint(0, 90), new ChartPoint(10, 60)]),
            new ChartSeries("ASR", ChartPalette.Asr, [new ChartPoint(0, 100), new ChartPoint(10, 5)]),
        };
        var chart = Render<LineChart>(p => p.Add(c => c.Series, series));

        var asr = chart.FindAll("g[data-series=ASR] circle").Select(c => double.Parse(c.GetAttribute("cy")!, CultureInfo.InvariantCulture)).ToList();
        Assert.True(asr[0] < asr[1], "100% must sit above 5% (SVG y grows downwards)");
        var acc = chart.FindAll("g[data-series=ACC] circle").Select(c => double.Parse(c.GetAttribute("cx")!, CultureInfo.InvariantCulture)).ToList();
        Assert.True(acc[0] < acc[1]);

        chart.FindAll("[data-testid=legend] .mud-chip").Single(c => c.TextContent == "ASR").Click();
        Assert.Empty(chart.FindAll("g[data-series=ASR]"));
        Assert.Single(chart.FindAll("g[data-series=ACC]"));
    }

    [Fact]
    public void Compare_scatters_each_runs_acc_against_asr_and_marks_differing_parameters()
    {
        var rnp = Fixtures.RnpRun;
        var clp = Fixtures.Read<Api.RunInfo>("clp-run.json");
        var model = new ComparisonModel([(rnp, Fixtures.RnpTrajectory), (clp, Fixtures.Read<Api.TrajectoryPoint[]>("clp-trajectory.json"))]);

        var scatter = model.Scatter();
        var clpPoint = scatter.Single(s => s.Name.StartsWith("clp", StringComparison.Ordinal)).Points.Single();
        Assert.Equal(75.76, clpPoint.X, 6);
        Assert.Equal(0, clpPoint.Y, 6);
        // Both runs purified the same model: one "before" point.
        Assert.Single(scatter.Single(s => s.Name == "before defense").Points);

        var rows = model.ParameterRows();
        Assert.True(rows.Single(r => r.Name == "defense").Differs);
        Assert.False(rows.Single(r => r.Name == "model").Differs);
        // RNP has no "u"; CLP's threshold u = 3 shows in its column only.
        Assert.Equal(["–", "3"], rows.Single(r => r.Name == "u").Values);
        // Data-free CLP validated nothing (no clean data): only RNP has an ACC trajectory to overlay.
        Assert.Equal(["rnp"], model.Trajectories("ACC").Select(s => s.Name[..3]));

        // With the team's names at hand, the model and data sets read by name instead of by id.
        var named = new ComparisonModel(model.Runs, new Dictionary<Guid, string> { [rnp.ModelId!.Value] = "suspect.pt", [rnp.CleanDatasetId!.Value] = "clean-500.npz" });
        Assert.Equal("suspect.pt", named.ParameterRows().Single(r => r.Name == "model").Values[0]);
        Assert.Equal("clean-500.npz", named.ParameterRows().Single(r => r.Name == "clean set").Values[0]);
    }

    [Fact]
    public void Pointing_reads_every_series_at_that_x_dragging_zooms_and_the_keyboard_does_both()
    {
        ChartPoint[] Line(params double[] ys) => [.. ys.Select((y, i) => new ChartPoint(i * 0.1, y))];
        var series = new[]
        {
            new ChartSeries("ACC", ChartPalette.Acc, Line(90, 89, 88, 80, 60, 40)),
            new ChartSeries("ASR", ChartPalette.Asr, Line(100, 97, 40, 3, 1, 0)),
        };
        var chart = Render<LineChart>(p => p.Add(c => c.Series, series).Add(c => c.XLabel, "ratio").Add(c => c.YLabel, "validation %"));
        var bands = chart.FindAll("rect.hover-band");
        Assert.Equal(6, bands.Count);

        // Pointing above x = 0.3 reads both series there.
        bands[3].TriggerEvent("onmouseenter", new Microsoft.AspNetCore.Components.Web.MouseEventArgs());
        Assert.Equal("ratio 0.3 ACC 80% ASR 3%", Readout(chart));

        // Dragging from 0.1 to 0.3 zooms the x axis to that range: three points per series, and a way back.
        chart.FindAll("rect.hover-band")[1].TriggerEvent("onmousedown", new Microsoft.AspNetCore.Components.Web.MouseEventArgs());
        chart.FindAll("rect.hover-band")[3].TriggerEvent("onmouseenter", new Microsoft.AspNetCore.Components.Web.MouseEventArgs());
        Assert.Single(chart.FindAll("[data-testid=chart-selection]"));
        chart.FindAll("rect.hover-band")[3].TriggerEvent("onmouseup", new Microsoft.AspNetCore.Components.Web.MouseEventArgs());
        Assert.Equal(3, chart.FindAll("g[data-series=ACC] circle").Count);
        Assert.Equal(3, chart.FindAll("rect.hover-band").Count);
        chart.Find("[data-testid=reset-zoom] button, button[data-testid=reset-zoom]").Click();
        Assert.Equal(6, chart.FindAll("g[data-series=ACC] circle").Count);
        Assert.Empty(chart.FindAll("[data-testid=reset-zoom]"));

        // Keyboard: End reads the last x, ← the one before; Shift+← selects, Enter zooms, Escape undoes.
        var svg = chart.Find("svg.wd-chart");
        Assert.Equal("0", svg.GetAttribute("tabindex"));
        svg.KeyDown(new Microsoft.AspNetCore.Components.Web.KeyboardEventArgs { Key = "End" });
        svg.KeyDown(new Microsoft.AspNetCore.Components.Web.KeyboardEventArgs { Key = "ArrowLeft" });
        Assert.StartsWith("ratio 0.4 ACC 60%", Readout(chart));
        svg.KeyDown(new Microsoft.AspNetCore.Components.Web.KeyboardEventArgs { Key = "ArrowLeft", ShiftKey = true });
        svg.KeyDown(new Microsoft.AspNetCore.Components.Web.KeyboardEventArgs { Key = "Enter" });
        Assert.Equal(2, chart.FindAll("g[data-series=ASR] circle").Count);
        svg.KeyDown(new Microsoft.AspNetCore.Components.Web.KeyboardEventArgs { Key = "Escape" });
        Assert.Equal(6, chart.FindAll("g[data-series=ASR] circle").Count);

        // A hidden series leaves the readout.
        chart.FindAll("[data-testid=legend] .mud-chip").Single(c => c.TextContent == "ASR").Click();
        chart.FindAll("rect.hover-band")[0].TriggerEvent("onmouseenter", new Microsoft.AspNetCore.Components.Web.MouseEventArgs());
        Assert.Equal("ratio 0 ACC 90%", Readout(chart));
    }

    /// <summary>The readout's items (flex items, spaced by the layout) as one line.</summary>
    private static string Readout(IRenderedComponent<LineChart> chart) =>
        string.Join(' ', chart.FindAll("[data-testid=readout] > span").Select(s => s.TextContent.Trim()));

    [Fact]
    public void A_data_free_clp_run_shows_its_steps_as_a_table_not_an_empty_chart()
    {
        var points = Fixtures.Read<Api.TrajectoryPoint[]>("clp-trajectory.json");
        var chart = Render<TrajectoryChart>(p => p.Add(c => c.Points, points));
        Assert.Empty(chart.FindAll("svg"));
        Assert.Contains("No validation metrics along the way", chart.Find("[data-testid=trajectory-unmeasured]").TextContent);
        var rows = chart.FindAll("[data-testid=trajectory-table] tbody tr");
        Assert.Equal(points.Length, rows.Count);
        Assert.Contains("u = 10", rows[1].TextContent);
    }
}
