using MudBlazor;

namespace WebDefense.Client.Layout;

public static class Themes
{
    public static readonly MudTheme Default = new()
    {
        PaletteLight = new PaletteLight { Primary = "#1e5aa8", Secondary = "#a8321e", AppbarBackground = "#1e3a5f" },
        PaletteDark = new PaletteDark { Primary = "#7fb0ff", Secondary = "#ff9a85" },
    };
}
