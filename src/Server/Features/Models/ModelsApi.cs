using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using WebDefense.Core.Models;
using WebDefense.Core.Models.Zoo;
using WebDefense.Server.Auth;
using WebDefense.Server.Data;
using WebDefense.Server.Features.Shared;
using WebDefense.Server.Hosting;

namespace WebDefense.Server.Features.Models;

/// <summary>
/// A model. The upload's answer also says what the server found out itself (<paramref name="Inferred"/>: architecture,
/// classes, input) and what it unwrapped around the weights (<paramref name="Checkpoint"/>); neither is stored, so
/// GET answers them as null.
/// </summary>
public sealed record ModelResponse(
    Guid Id, string Name, string FileName, string Format, string? Architecture, int NumClasses, int[] InputShape,
    float[] Mean, float[] Std, long ParameterCount, string Sha256, long SizeBytes, string[] Warnings, DateTimeOffset CreatedAt,
    string[]? Inferred = null, CheckpointResponse? Checkpoint = null)
{
    public static ModelResponse From(ModelRecord m) => new(
        m.Id, m.Name, m.FileName, m.Format, m.Architecture, m.NumClasses, [m.Channels, m.Height, m.Width],
        FormParsing.Split(m.Mean), FormParsing.Split(m.Std), m.ParameterCount, m.Sha256, m.SizeBytes,
        JsonSerializer.Deserialize<string[]>(m.Warnings) ?? [], m.CreatedAt);
}

/// <summary>
/// What surrounded the weights in a PyTorch checkpoint: the key they were unwrapped from (null when the file is the
/// state dict itself), the prefixes stripped from every name, and the entries ignored, e.g. "epoch (int 29)".
/// </summary>
public sealed record CheckpointResponse(string? UnwrappedFrom, string[] StrippedPrefixes, string[] Ignored)
{
    public static CheckpointResponse From(CheckpointContents c) => new(c.Container, [.. c.StrippedPrefixes], [.. c.Ignored]);
}

public sealed record ArchitectureResponse(string Name, string Description);

public static class ModelsApi
{
    public static IEndpointRouteBuilder MapModelsApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/models").WithTags("Models").RequireAuthorization();

        api.MapPost("/", UploadAsync)
            .WithSummary("Upload a suspect model (multipart: file; optional name, architecture, numClasses, inputShape \"C,H,W\", mean, std). What the file shows (a state dict's zoo architecture, classes and input channels; a TorchScript model's classes and input) is found out and listed in 'inferred'.")
            .Accepts<IFormFile>("multipart/form-data")
            .Produces<ModelResponse>(StatusCodes.Status201Created)
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType);
        api.MapGet("/", ListAsync).WithSummary("The team's models, newest first.");
        api.MapGet("/architectures", () => TypedResults.Ok(ModelZoo.Names.Select(n => new ArchitectureResponse(n.Name, n.Description)).ToArray()))
            .WithSummary("The zoo's architectures: the layouts a weights-only upload (state dict, safetensors) is matched against.");
        api.MapGet("/{id:guid}", GetAsync).WithSummary("One model.");
        api.MapDelete("/{id:guid}", DeleteAsync).WithSummary("Delete a model no run uses (409 otherwise).");
        return app;
    }

    private static async Task<IResult> UploadAsync(HttpRequest request, AppDbContext db, ArtifactStore store, IOptions<WebDefenseOptions> options, ILogger<ModelRecord> log, CancellationToken ct)
    {
        MultipartUpload upload;
        try
        {
            upload = await MultipartUpload.ReadAsync(request, options.Value.MaxModelUploadBytes, options.Value.TempPath, ct);
        }
        catch (Exception e) when (UploadResults.ForException(e) is { } problem)
        {
            return problem;
        }

        using (upload)
        {
            var form = new FormParsing(upload);
            var architecture = form.Text("architecture");
            if (architecture is not null && architecture.Equals("torchscript", StringComparison.OrdinalIgnoreCase)) architecture = null;
            var numClasses = form.Int("numClasses", required: false, 1, 100_000);
            var shape = form.Shape("inputShape", required: false);
            var mean = shape is null ? form.FloatList("mean") : form.Floats("mean", shape[0], 0f);
            var std = shape is null ? form.FloatList("std") : form.Floats("std", shape[0], 1f);
            if (form.Errors.Count > 0) return TypedResults.ValidationProblem(form.Errors);

            // The engine parses the upload (restricted readers, zoo matching, dry-run forward) before anything is recorded.
            var localPath = upload.FilePath! + ArtifactStore.SafeExtension(upload.FileName);
            File.Move(upload.FilePath!, localPath);
            upload.Release();
            ModelRecord record;
            string[] inferred;
            CheckpointResponse? checkpoint;
            try
            {
                using var loaded = ModelLoader.Load(localPath, new PartialDeclaration(architecture, numClasses, shape, mean, std));
                var input = loaded.Classifier.Input;
                record = new ModelRecord
                {
                    TeamId = request.HttpContext.User.TeamId(),
                    Name = form.Text("name") ?? upload.FileName,
                    FileName = upload.FileName,
                    Format = loaded.Format.ToString(),
                    Architecture = loaded.Declaration.Architecture,
                    NumClasses = loaded.Classifier.NumClasses,
                    Channels = input.Channels, Height = input.Height, Width = input.Width,
                    Mean = FormParsing.Join(input.Mean), Std = FormParsing.Join(input.Std),
                    ParameterCount = loaded.ParameterCount,
                    Warnings = JsonSerializer.Serialize(loaded.Warnings),
                    Sha256 = upload.Sha256, SizeBytes = upload.Size, StoredName = "",
                };
                inferred = [.. loaded.Inferred];
                checkpoint = loaded.Format is ModelFileFormat.PyTorchStateDict or ModelFileFormat.PyTorchLegacy ? CheckpointResponse.From(loaded.Contents) : null;
            }
            catch (ModelFileException e)
            {
                File.Delete(localPath);
                var unknown = e.Message.StartsWith("unknown model file format", StringComparison.OrdinalIgnoreCase);
                return TypedResults.Problem(e.Message, statusCode: unknown ? StatusCodes.Status415UnsupportedMediaType : StatusCodes.Status400BadRequest,
                    title: unknown ? "Unknown model format" : "Invalid model file");
            }
            catch (ArgumentException e)
            {
                File.Delete(localPath);
                return TypedResults.Problem(e.Message, statusCode: StatusCodes.Status400BadRequest, title: "Invalid model file");
            }

            record.StoredName = store.Add(localPath, upload.Sha256, upload.FileName, move: true);
            db.Models.Add(record);
            await db.SaveChangesAsync(ct);
            log.LogInformation("Model {ModelId} uploaded: {Format} {Architecture}, {Bytes} bytes", record.Id, record.Format, record.Architecture, record.SizeBytes);
            return TypedResults.Created($"/api/models/{record.Id}", ModelResponse.From(record) with { Inferred = inferred, Checkpoint = checkpoint });
        }
    }

    private static async Task<Ok<ModelResponse[]>> ListAsync(HttpContext http, AppDbContext db, CancellationToken ct)
    {
        var team = http.User.TeamId();
        var models = await db.Models.AsNoTracking().Where(m => m.TeamId == team).OrderByDescending(m => m.CreatedAt).ToListAsync(ct);
        return TypedResults.Ok(models.Select(ModelResponse.From).ToArray());
    }

    private static async Task<Results<Ok<ModelResponse>, NotFound>> GetAsync(Guid id, HttpContext http, AppDbContext db, CancellationToken ct)
    {
        var team = http.User.TeamId();
        var model = await db.Models.AsNoTracking().FirstOrDefaultAsync(m => m.Id == id && m.TeamId == team, ct);
        return model is null ? TypedResults.NotFound() : TypedResults.Ok(ModelResponse.From(model));
    }

    private static async Task<Results<NoContent, NotFound, ProblemHttpResult>> DeleteAsync(Guid id, HttpContext http, AppDbContext db, ArtifactStore store, CancellationToken ct)
    {
        var team = http.User.TeamId();
        var model = await db.Models.FirstOrDefaultAsync(m => m.Id == id && m.TeamId == team, ct);
        if (model is null) return TypedResults.NotFound();
        var runs = await db.Runs.CountAsync(r => r.ModelId == id, ct);
        if (runs > 0) return TypedResults.Problem($"the model is used by {runs} run(s); delete them first", statusCode: StatusCodes.Status409Conflict, title: "Model in use");
        db.Models.Remove(model);
        await db.SaveChangesAsync(ct);
        store.DeleteIfUnused(model.StoredName, await StoredFiles.InUseAsync(db, model.StoredName, ct));
        return TypedResults.NoContent();
    }
}
