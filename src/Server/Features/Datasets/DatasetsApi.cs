using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using WebDefense.Core.Data;
using WebDefense.Core.Data.Triggers;
using WebDefense.Server.Auth;
using WebDefense.Server.Data;
using WebDefense.Server.Features.Shared;
using WebDefense.Server.Hosting;

namespace WebDefense.Server.Features.Datasets;

/// <summary>
/// A data set. For class-folder archives (zip, tar, tar.gz) the upload's answer carries <paramref name="ClassNames"/>:
/// the folder that became label i at index i (folders in ordinal order). It is not stored; GET answers null.
/// </summary>
public sealed record DatasetResponse(
    Guid Id, string Name, string Kind, string FileName, int Count, int[] Shape, long[] Classes, string Sha256, long SizeBytes, DateTimeOffset CreatedAt,
    string[]? ClassNames = null)
{
    public static DatasetResponse From(DatasetRecord d) => new(
        d.Id, d.Name, d.Kind, d.FileName, d.Count, [d.Channels, d.Height, d.Width],
        JsonSerializer.Deserialize<long[]>(d.Classes) ?? [], d.Sha256, d.SizeBytes, d.CreatedAt);
}

public static class DatasetKinds
{
    public const string Clean = "clean";
    public const string Test = "test";
    public const string BackdoorTest = "backdoor-test";
    public const string BackdoorSamples = "backdoor-samples";
    public const string PoisonedTrain = "poisoned-train";
    public static readonly string[] All = [Clean, Test, BackdoorTest, BackdoorSamples, PoisonedTrain];
}

public static class DatasetsApi
{
    public static IEndpointRouteBuilder MapDatasetsApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/datasets").WithTags("Datasets").RequireAuthorization();
        api.MapPost("/", UploadAsync)
            .WithSummary("Upload a data set (multipart: file, name, kind = clean|test|backdoor-test|backdoor-samples|poisoned-train; optional channels 1|3 and resize \"H,W\" for image archives). Class-folder archives (.zip, .tar, .tar.gz) answer with classNames: the folder of label i at index i.")
            .Accepts<IFormFile>("multipart/form-data")
            .Produces<DatasetResponse>(StatusCodes.Status201Created)
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType);
        api.MapGet("/", ListAsync).WithSummary("The team's data sets, newest first (optional ?kind=).");
        api.MapGet("/{id:guid}", GetAsync).WithSummary("One data set.");
        api.MapGet("/{id:guid}/samples/{index:int}.png", SampleAsync)
            .WithSummary("Sample `index` of a data set as PNG, enlarged `scale`× (1–16), with an optional trigger (JSON, as for runs) applied: the trigger preview.")
            .Produces(StatusCodes.Status200OK, contentType: "image/png")
            .ProducesValidationProblem();
        api.MapDelete("/{id:guid}", DeleteAsync).WithSummary("Delete a data set no run uses (409 otherwise).");
        return app;
    }

    private static async Task<IResult> SampleAsync(
        Guid id, int index, string? trigger, int? scale, HttpContext http, AppDbContext db, ArtifactStore store, CancellationToken ct)
    {
        var team = http.User.TeamId();
        var d = await db.Datasets.AsNoTracking().FirstOrDefaultAsync(x => x.Id == id && x.TeamId == team, ct);
        if (d is null) return TypedResults.NotFound();
        var errors = new Dictionary<string, string[]>();
        if (index < 0 || index >= d.Count) errors["index"] = [$"must lie in [0, {d.Count})"];
        if (scale is < 1 or > 16) errors["scale"] = ["must lie in [1, 16]"];
        TriggerSpec? spec = null;
        if (!string.IsNullOrWhiteSpace(trigger))
        {
            try
            {
                spec = TriggerSpec.FromJson(trigger);
                spec.Validate(d.Channels, d.Height, d.Width);
            }
            catch (Exception e) when (e is InvalidTriggerException or ArgumentException)
            {
                errors["trigger"] = [e.Message];
            }
        }

        if (errors.Count > 0) return TypedResults.ValidationProblem(errors);
        var options = new DatasetReadOptions { Channels = d.Channels, TargetSize = (d.Height, d.Width) };
        using var data = DatasetReader.Read(await File.ReadAllBytesAsync(store.PathOf(d.StoredName), ct), d.FileName, options);
        var png = TriggerPreview.RenderPng(data.Data, index, spec, scale ?? 4);
        return TypedResults.File(png, "image/png");
    }

    private static async Task<IResult> UploadAsync(HttpRequest request, AppDbContext db, ArtifactStore store, IOptions<WebDefenseOptions> options, ILogger<DatasetRecord> log, CancellationToken ct)
    {
        MultipartUpload upload;
        try
        {
            upload = await MultipartUpload.ReadAsync(request, options.Value.MaxDatasetUploadBytes, options.Value.TempPath, ct);
        }
        catch (Exception e) when (UploadResults.ForException(e) is { } problem)
        {
            return problem;
        }

        using (upload)
        {
            var form = new FormParsing(upload);
            var kind = form.Text("kind")?.ToLowerInvariant();
            if (kind is null || !DatasetKinds.All.Contains(kind)) form.Errors["kind"] = [$"must be one of {string.Join(", ", DatasetKinds.All)}"];
            var channels = form.Int("channels", required: false, 1, 3);
            if (channels == 2) form.Errors["channels"] = ["must be 1 or 3"];
            var resize = form.Text("resize");
            (int, int)? target = null;
            if (resize is not null)
            {
                var parts = resize.Split(',', StringSplitOptions.TrimEntries);
                if (parts.Length == 2 && int.TryParse(parts[0], out var h) && int.TryParse(parts[1], out var w) && h is >= 1 and <= 4096 && w is >= 1 and <= 4096) target = (h, w);
                else form.Errors["resize"] = ["must be \"H,W\""];
            }

            if (form.Errors.Count > 0) return TypedResults.ValidationProblem(form.Errors);

            var readOptions = new DatasetReadOptions
            {
                Channels = channels ?? 3,
                TargetSize = target,
                Limits = DatasetReadLimits.Default with { MaxUploadBytes = options.Value.MaxDatasetUploadBytes },
            };
            var record = new DatasetRecord
            {
                TeamId = request.HttpContext.User.TeamId(),
                Name = form.Text("name") ?? upload.FileName,
                Kind = kind!,
                FileName = upload.FileName,
                Sha256 = upload.Sha256,
                SizeBytes = upload.Size,
                StoredName = "",
            };
            string[]? classNames = null;
            try
            {
                var bytes = await File.ReadAllBytesAsync(upload.FilePath!, ct);
                using var data = DatasetReader.Read(bytes, upload.FileName, readOptions);
                var classes = data.Data.Classes();
                classNames = data.ClassNames?.ToArray();
                // A poisoned training set may carry the truth (a bool array "poisoned", one flag per image): checked now, used for reporting only.
                if (kind == DatasetKinds.PoisonedTrain) NumpyReader.ReadPoisonFlags(bytes, upload.FileName, readOptions, data.Data.Count);

                record.Count = data.Data.Count;
                record.Channels = data.Data.Channels;
                record.Height = data.Data.Height;
                record.Width = data.Data.Width;
                record.Classes = JsonSerializer.Serialize(classes);
                record.MaxLabel = classes.Length == 0 ? -1 : (int)classes.Max();
            }
            catch (DatasetFileException e)
            {
                var unknown = e.Message.Contains("in no recognised format", StringComparison.Ordinal);
                return TypedResults.Problem(e.Message, statusCode: unknown ? StatusCodes.Status415UnsupportedMediaType : StatusCodes.Status400BadRequest,
                    title: unknown ? "Unknown data set format" : "Invalid data set file");
            }

            if (record.Count == 0) return TypedResults.Problem("the data set holds no images", statusCode: StatusCodes.Status400BadRequest, title: "Invalid data set file");

            record.StoredName = store.Add(upload.FilePath!, upload.Sha256, upload.FileName, move: true);
            upload.Release();
            db.Datasets.Add(record);
            await db.SaveChangesAsync(ct);
            log.LogInformation("Dataset {DatasetId} uploaded: {Kind}, {Count} images {C}x{H}x{W}", record.Id, record.Kind, record.Count, record.Channels, record.Height, record.Width);
            return TypedResults.Created($"/api/datasets/{record.Id}", DatasetResponse.From(record) with { ClassNames = classNames });
        }
    }

    private static async Task<Ok<DatasetResponse[]>> ListAsync(string? kind, HttpContext http, AppDbContext db, CancellationToken ct)
    {
        var team = http.User.TeamId();
        var query = db.Datasets.AsNoTracking().Where(d => d.TeamId == team);
        if (kind is not null) query = query.Where(d => d.Kind == kind);
        var list = await query.OrderByDescending(d => d.CreatedAt).ToListAsync(ct);
        return TypedResults.Ok(list.Select(DatasetResponse.From).ToArray());
    }

    private static async Task<Results<Ok<DatasetResponse>, NotFound>> GetAsync(Guid id, HttpContext http, AppDbContext db, CancellationToken ct)
    {
        var team = http.User.TeamId();
        var d = await db.Datasets.AsNoTracking().FirstOrDefaultAsync(x => x.Id == id && x.TeamId == team, ct);
        return d is null ? TypedResults.NotFound() : TypedResults.Ok(DatasetResponse.From(d));
    }

    private static async Task<Results<NoContent, NotFound, ProblemHttpResult>> DeleteAsync(Guid id, HttpContext http, AppDbContext db, ArtifactStore store, CancellationToken ct)
    {
        var team = http.User.TeamId();
        var d = await db.Datasets.FirstOrDefaultAsync(x => x.Id == id && x.TeamId == team, ct);
        if (d is null) return TypedResults.NotFound();
        var runs = await db.Runs.CountAsync(r => r.CleanDatasetId == id || r.TestDatasetId == id || r.BackdoorTestDatasetId == id || r.BackdoorSamplesDatasetId == id || r.PoisonedTrainDatasetId == id, ct);
        if (runs > 0) return TypedResults.Problem($"the data set is used by {runs} run(s); delete them first", statusCode: StatusCodes.Status409Conflict, title: "Data set in use");
        db.Datasets.Remove(d);
        await db.SaveChangesAsync(ct);
        store.DeleteIfUnused(d.StoredName, await StoredFiles.InUseAsync(db, d.StoredName, ct));
        return TypedResults.NoContent();
    }
}
