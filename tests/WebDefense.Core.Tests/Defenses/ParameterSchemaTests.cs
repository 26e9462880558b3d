using System.Text.Json;
using WebDefense.Core.Defenses;
using WebDefense.Core.Defenses.Framework;

namespace WebDefense.Core.Tests.Defenses;

public class ParameterSchemaTests
{
    private static readonly IReadOnlyList<ParameterSpec> Schema =
    [
        ParameterSpec.Int("epochs", 20, 1, 100, "epochs"),
        ParameterSpec.Number("lr", 0.01, 1e-5, 1, "learning rate"),
        ParameterSpec.Flag("mask", true, "persistent mask"),
        ParameterSpec.Choice("selection", "acc-bound", ["acc-bound", "fixed-threshold"], "rule"),
    ];

    [Fact]
    public void Defaults_are_resolved_and_overrides_applied_from_json()
    {
        var json = JsonDocument.Parse("""{"epochs": 5, "lr": 0.2, "mask": false, "selection": "fixed-threshold"}""").RootElement;
        var overrides = json.EnumerateObject().ToDictionary(p => p.Name, p => (object)p.Value.Clone());
        var resolved = DefenseParameters.Resolve(Schema, overrides);
        Assert.Equal(5, resolved.Int("epochs"));
        Assert.Equal(0.2, resolved.Number("lr"));
        Assert.False(resolved.Flag("mask"));
        Assert.Equal("fixed-threshold", resolved.Choice("selection"));
        Assert.Equal(20, DefenseParameters.Resolve(Schema).Int("epochs"));
    }

    [Fact]
    public void Every_bad_value_is_reported_by_name()
    {
        var ex = Assert.Throws<DefenseParameterException>(() => DefenseParameters.Resolve(Schema, new Dictionary<string, object>
        {
            ["epochs"] = 2.5,
            ["lr"] = 7.0,
            ["mask"] = "maybe",
            ["selection"] = "oracle",
            ["typo"] = 1,
        }));
        Assert.Equal(["epochs", "lr", "mask", "selection", "typo"], ex.Errors.Keys.Order());
        Assert.Contains("whole number", ex.Errors["epochs"]);
        Assert.Contains("between", ex.Errors["lr"]);
        Assert.Contains("acc-bound", ex.Errors["selection"]);
        Assert.Contains("unknown parameter", ex.Errors["typo"]);
    }

    [Fact]
    public void Seed_defense_schemas_have_valid_defaults()
    {
        foreach (var defense in new IDefense[] { new GradPruneDefense(), new RnpDefense() })
        {
            var resolved = DefenseParameters.Resolve(defense.Parameters);
            Assert.Equal(defense.Parameters.Count, resolved.Values.Count);
            Assert.All(defense.Parameters, p => Assert.False(string.IsNullOrWhiteSpace(p.Help)));
        }
    }
}
