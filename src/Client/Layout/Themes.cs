using MudBlazor;

namespace WebDefense.Client.Layout;

public static class Themes
{
    public static readonly MudTheme Default = new()
    {
        // InfoDarken is the text colour of info alerts: MudBlazor's default (#0c80df on #f2f9fe, 3.8:1) is below 4.5:1.
        PaletteLight = new PaletteLight { Primary = "#1e5aa8", Secondary = "#a8321e", AppbarBackground = "#1e3a5f", InfoDarken = "#0b62ad" },
        PaletteDark = new PaletteDark { Primary = "#7fb0ff", Secondary = "#ff9a85" },
    };
}
