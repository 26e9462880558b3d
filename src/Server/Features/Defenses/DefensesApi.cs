using WebDefense.Core.Defenses;
using WebDefense.Core.Defenses.Framework;

namespace WebDefense.Server.Features.Defenses;

public sealed record ParameterResponse(string Name, string Kind, object Default, string Help, double? Min, double? Max, string[]? Choices);

public sealed record DefenseResponse(string Name, string Title, string Description, string Paper, string[] Needs, IReadOnlyList<string> Steps, ParameterResponse[] Parameters)
{
    public static DefenseResponse From(IDefense d) => new(
        d.Name, d.Title, d.Description, d.Paper,
        Enum.GetValues<DefenseNeeds>().Where(n => n != DefenseNeeds.None && d.Needs.HasFlag(n)).Select(n => n.ToString()).ToArray(),
        d.Steps,
        d.Parameters.Select(p => new ParameterResponse(p.Name, p.Kind.ToString().ToLowerInvariant(), p.Default, p.Help, p.Min, p.Max, p.Choices)).ToArray());
}

public static class DefensesApi
{
    public static IEndpointRouteBuilder MapDefensesApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/defenses").WithTags("Defenses").RequireAuthorization();
        api.MapGet("/", () => TypedResults.Ok(DefenseCatalog.All.Select(DefenseResponse.From).ToArray()))
            .WithSummary("The defenses: what each needs, its steps and its parameter schema with defaults.");
        api.MapGet("/{name}", (string name) => DefenseCatalog.Find(name) is { } d ? Results.Ok(DefenseResponse.From(d)) : Results.NotFound())
            .WithSummary("One defense.")
            .Produces<DefenseResponse>()
            .Produces(StatusCodes.Status404NotFound);
        return app;
    }
}
