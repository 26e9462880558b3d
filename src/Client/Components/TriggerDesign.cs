using System.Text.Json;
using System.Text.Json.Nodes;

namespace WebDefense.Client.Components;

/// <summary>A trigger as the user designs it (BadNets patch, Blended noise, SIG), turned into the API's trigger JSON.</summary>
public sealed class TriggerDesign
{
    public static readonly string[] Types = ["patch", "blend", "sig"];
    public static readonly string[] Positions = ["bottom-right", "top-left", "top-right", "bottom-left", "center"];

    public string Type { get; set; } = "patch";
    public int PatchSize { get; set; } = 3;
    public string Position { get; set; } = "bottom-right";
    public double Alpha { get; set; } = 0.2;
    public int NoiseSeed { get; set; }
    public double Delta { get; set; } = 40;
    public double Frequency { get; set; } = 6;

    public string ToJson()
    {
        var node = new JsonObject { ["type"] = Type };
        switch (Type)
        {
            case "patch":
                node["size"] = PatchSize;
                node["position"] = Position;
                break;
            case "blend":
                node["alpha"] = Alpha;
                node["pattern"] = "noise";
                node["seed"] = NoiseSeed;
                break;
            case "sig":
                node["delta"] = Delta;
                node["frequency"] = Frequency;
                break;
            default:
                throw new InvalidOperationException($"unknown trigger type {Type}");
        }

        return node.ToJsonString();
    }

    public JsonElement ToElement() => JsonDocument.Parse(ToJson()).RootElement.Clone();
}
