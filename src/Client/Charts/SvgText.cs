using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.Components.Rendering;

namespace WebDefense.Client.Charts;

/// <summary>An SVG &lt;text&gt; element (Razor reserves the &lt;text&gt; tag, so charts write labels with this).</summary>
public sealed class SvgText : ComponentBase
{
    [Parameter] public string X { get; set; } = "0";
    [Parameter] public string Y { get; set; } = "0";
    [Parameter] public string? Anchor { get; set; }
    [Parameter] public string? Transform { get; set; }
    [Parameter] public string Text { get; set; } = "";

    protected override void BuildRenderTree(RenderTreeBuilder builder)
    {
        builder.OpenElement(0, "text");
        builder.AddAttribute(1, "x", X);
        builder.AddAttribute(2, "y", Y);
        if (Anchor is not null) builder.AddAttribute(3, "text-anchor", Anchor);
        if (Transform is not null) builder.AddAttribute(4, "transform", Transform);
        builder.AddContent(5, Text);
        builder.CloseElement();
    }
}
