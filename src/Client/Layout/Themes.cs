using MudBlazor;

namespace WebDefense.Client.Layout;

public static class Themes
{
    public static readonly MudTheme Default = new()
    {
        // InfoDarken is the text colour of info alerts: MudBlazor's default (#0c80df on #f2f9fe, 3.8:1) is below 4.5:1.
        // Status colours dark enough for white text on filled chips and for coloured text on white (outlined chips): at
        // least 4.5:1 both ways (MudBlazor's success #00c853 gave 2.2:1; axe-core in AccessibilityTests checks every page).
        PaletteLight = new PaletteLight
        {
            Primary = "#1e5aa8", Secondary = "#a8321e", AppbarBackground = "#1e3a5f", InfoDarken = "#0b62ad",
            Success = "#2e7d32", Error = "#c62828", Warning = "#a85200", Info = "#0b62ad",
        },
        PaletteDark = new PaletteDark { Primary = "#7fb0ff", Secondary = "#ff9a85" },
    };
}
