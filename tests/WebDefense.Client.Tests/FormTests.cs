using System.Net;
using System.Text.Json;
using WebDefense.Client.Api;
using WebDefense.Client.Components;

namespace WebDefense.Client.Tests;

public sealed class FormTests : DashboardTest
{
    [Fact]
    public void The_parameter_form_is_generated_from_the_schema_and_filled_with_defaults()
    {
        var rnp = Fixtures.Defense("rnp");
        var values = new ParameterValues(rnp.Parameters);
        var form = Render<ParameterForm>(p => p.Add(c => c.Values, values));

        Assert.Equal(rnp.Parameters.Length, form.FindAll("[data-param]").Count);
        var epochs = rnp.Parameters.Single(p => p.Name == "unlearning_epochs");
        Assert.Equal(epochs.Default.GetDouble().ToString(System.Globalization.CultureInfo.InvariantCulture),
            form.Find("[data-param=unlearning_epochs] input").GetAttribute("value"));
        Assert.Contains(epochs.Help, form.Find("[data-param=unlearning_epochs]").TextContent);
        Assert.Empty(values.Overrides());
        Assert.True(values.IsValid);
    }

    [Fact]
    public void Out_of_range_values_are_marked_next_to_their_field_and_only_changes_are_sent()
    {
        var rnp = Fixtures.Defense("rnp");
        var values = new ParameterValues(rnp.Parameters);
        var form = Render<ParameterForm>(p => p.Add(c => c.Values, values));

        form.Find("[data-param=unlearning_epochs] input").Input("0");
        Assert.Contains("must be at least 1", form.Find("[data-param=unlearning_epochs]").TextContent);
        Assert.False(values.IsValid);

        form.Find("[data-param=unlearning_epochs] input").Input("3");
        Assert.DoesNotContain("must be at least", form.Find("[data-param=unlearning_epochs]").TextContent);
        var sent = values.Overrides();
        Assert.Equal(["unlearning_epochs"], sent.Keys);
        Assert.Equal(3, sent["unlearning_epochs"].GetDouble());
    }

    [Fact]
    public void The_apis_field_errors_appear_next_to_the_parameter_they_concern()
    {
        var problem = Fixtures.Read<JsonElement>("validation-problem.json");
        var errors = problem.GetProperty("errors").EnumerateObject().ToDictionary(e => e.Name, e => e.Value.EnumerateArray().Select(v => v.GetString()!).ToArray());
        // The captured answer names grad-prune's parameters; render grad-prune's form with an "alpha" the server refused.
        var schema = Fixtures.Defense("grad-prune").Parameters.Append(
            new ParameterInfo("alpha", "number", JsonSerializer.SerializeToElement(0.2), "test field", 0, 1, null)).ToArray();
        var form = Render<ParameterForm>(p => p.Add(c => c.Values, new ParameterValues(schema)).Add(c => c.Errors, errors));

        Assert.Contains("unknown parameter", form.Find("[data-param=alpha]").TextContent);
        Assert.DoesNotContain("unknown parameter", form.Find("[data-param=lr]").TextContent);
        // Editing the field clears the server's message.
        form.Find("[data-param=alpha] input").Input("0.3");
        Assert.DoesNotContain("unknown parameter", form.Find("[data-param=alpha]").TextContent);
    }

    [Fact]
    public async Task Problem_details_are_read_into_a_message_and_field_errors()
    {
        var response = new HttpResponseMessage(HttpStatusCode.BadRequest) { Content = new StringContent(Fixtures.Text("validation-problem.json")) };
        var e = await ApiException.FromResponseAsync(response);
        Assert.Equal(HttpStatusCode.BadRequest, e.Status);
        Assert.Equal("required", e.For("cleanDatasetId"));
        Assert.Equal("required", e.For("CLEANDATASETID"));
        Assert.StartsWith("One or more validation errors occurred.", e.Message);
        Assert.Contains("targetLabel: required to measure the attack success rate", e.Message);
        Assert.Null(e.For("modelId"));
    }

    [Fact]
    public void Trigger_designs_become_the_apis_trigger_json()
    {
        Assert.Equal("""{"type":"patch","size":3,"position":"bottom-right"}""", new TriggerDesign().ToJson());
        Assert.Equal("""{"type":"blend","alpha":0.1,"pattern":"noise","seed":4}""", new TriggerDesign { Type = "blend", Alpha = 0.1, NoiseSeed = 4 }.ToJson());
        Assert.Equal("""{"type":"sig","delta":20,"frequency":6}""", new TriggerDesign { Type = "sig", Delta = 20 }.ToJson());
        // The demo run's stored trigger is exactly what the designer's default produces.
        Assert.Equal(Fixtures.RnpRun.Trigger, new TriggerDesign().ToJson());
    }

    [Fact]
    public void The_event_stream_of_a_real_run_parses_into_typed_messages()
    {
        using var stream = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(Fixtures.Text("clp-events.txt")));
        var messages = ServerSentEvents.ReadAsync(stream).ToBlockingEnumerable().ToList();

        Assert.Equal("snapshot", messages[0].Type);
        Assert.Equal("Running", messages[0].Data.GetProperty("status").GetString());
        var points = messages.Where(m => m.Type == "point").Select(m => m.Data.GetProperty("point").Deserialize<TrajectoryPoint>(WebDefenseApi.Json)!).ToList();
        Assert.Equal(Fixtures.Read<TrajectoryPoint[]>("clp-trajectory.json"), points);
        Assert.Equal("Succeeded", messages[^1].Data.GetProperty("status").GetString());
        Assert.Contains(messages, m => m.Type == "metrics" && m.Data.GetProperty("stage").GetString() == "after");
    }
}
