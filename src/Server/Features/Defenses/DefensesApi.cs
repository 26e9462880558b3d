using WebDefense.Core.Defenses;
using WebDefense.Core.Defenses.Framework;

namespace WebDefense.Server.Features.Defenses;

public sealed record ParameterResponse(string Name, string Kind, object Default, string Help, double? Min, double? Max, string[]? Choices);

/// <summary>A defense; <see cref="Kind"/> is post-training (purifies an uploaded model), training-time (trains one from a poisoned training set) or scan (the backdoor scan).</summary>
public sealed record DefenseResponse(string Name, string Title, string Description, string Paper, string[] Needs, IReadOnlyList<string> Steps, ParameterResponse[] Parameters, string Kind)
{
    public static DefenseResponse From(IDefenseDescription d) => new(
        d.Name, d.Title, d.Description, d.Paper,
        Enum.GetValues<DefenseNeeds>().Where(n => n != DefenseNeeds.None && d.Needs.HasFlag(n)).Select(n => n.ToString()).ToArray(),
        d.Steps,
        d.Parameters.Select(p => new ParameterResponse(p.Name, p.Kind.ToString().ToLowerInvariant(), p.Default, p.Help, p.Min, p.Max, p.Choices)).ToArray(),
        d is ITrainingDefense ? "training-time" : DefenseCatalog.IsScan(d.Name) ? "scan" : "post-training");

    public static IEnumerable<IDefenseDescription> Every => DefenseCatalog.All.Cast<IDefenseDescription>().Concat(DefenseCatalog.TrainingTime).Append(DefenseCatalog.Scan);
}

public static class DefensesApi
{
    public static IEndpointRouteBuilder MapDefensesApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/defenses").WithTags("Defenses").RequireAuthorization();
        api.MapGet("/", () => TypedResults.Ok(DefenseResponse.Every.Select(DefenseResponse.From).ToArray()))
            .WithSummary("The defenses, post-training and training-time (kind): what each needs, its steps and its parameter schema with defaults.");
        api.MapGet("/{name}", (string name) => DefenseResponse.Every.FirstOrDefault(d => string.Equals(d.Name, name, StringComparison.OrdinalIgnoreCase)) is { } d
                ? Results.Ok(DefenseResponse.From(d)) : Results.NotFound())
            .WithSummary("One defense.")
            .Produces<DefenseResponse>()
            .Produces(StatusCodes.Status404NotFound);
        return app;
    }
}
