using System.Security.Cryptography;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Net.Http.Headers;

namespace WebDefense.Server.Features.Shared;

public sealed class UploadTooLargeException(long limit) : Exception($"the upload is larger than the limit of {limit:N0} bytes")
{
    public long Limit { get; } = limit;
}

public sealed class BadUploadException(string message) : Exception(message);

/// <summary>
/// A multipart form whose one <c>file</c> part was streamed to a temp file (size-limited, hashed on the way).
/// Disposing deletes the temp file unless it was moved away.
/// </summary>
public sealed class MultipartUpload : IDisposable
{
    private const int MaxFieldBytes = 64 * 1024;

    public Dictionary<string, string> Fields { get; } = new(StringComparer.OrdinalIgnoreCase);
    public string? FilePath { get; private set; }
    public string FileName { get; private set; } = "upload";
    public long Size { get; private set; }
    public string Sha256 { get; private set; } = "";

    public string? Field(string name) => Fields.TryGetValue(name, out var v) && !string.IsNullOrWhiteSpace(v) ? v.Trim() : null;

    public static async Task<MultipartUpload> ReadAsync(HttpRequest request, long maxBytes, string tempDirectory, CancellationToken ct)
    {
        if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
        {
            size.MaxRequestBodySize = maxBytes + 1024 * 1024;
        }

        if (request.ContentLength > maxBytes + 1024 * 1024) throw new UploadTooLargeException(maxBytes);
        if (!MediaTypeHeaderValue.TryParse(request.ContentType, out var type) || !type.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase))
        {
            throw new BadUploadException("expected a multipart/form-data body with a 'file' part");
        }

        var boundary = HeaderUtilities.RemoveQuotes(type.Boundary).Value;
        if (string.IsNullOrEmpty(boundary)) throw new BadUploadException("multipart boundary missing");

        var upload = new MultipartUpload();
        try
        {
            var reader = new MultipartReader(boundary, request.Body) { BodyLengthLimit = maxBytes + 1024 * 1024 };
            while (await reader.ReadNextSectionAsync(ct) is { } section)
            {
                if (!ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var disposition)) continue;
                var name = HeaderUtilities.RemoveQuotes(disposition.Name).Value ?? "";
                if (disposition.IsFileDisposition())
                {
                    if (!name.Equals("file", StringComparison.OrdinalIgnoreCase) || upload.FilePath is not null)
                    {
                        throw new BadUploadException("exactly one file part named 'file' is expected");
                    }

                    upload.FileName = Path.GetFileName(HeaderUtilities.RemoveQuotes(disposition.FileNameStar.HasValue ? disposition.FileNameStar : disposition.FileName).Value ?? "upload");
                    if (string.IsNullOrWhiteSpace(upload.FileName)) upload.FileName = "upload";
                    Directory.CreateDirectory(tempDirectory);
                    upload.FilePath = Path.Combine(tempDirectory, Guid.NewGuid().ToString("N"));
                    await upload.CopyAsync(section.Body, maxBytes, ct);
                }
                else
                {
                    using var text = new StreamReader(section.Body);
                    var buffer = new char[MaxFieldBytes + 1];
                    var read = await text.ReadBlockAsync(buffer, ct);
                    if (read > MaxFieldBytes) throw new BadUploadException($"form field '{name}' is too long");
                    upload.Fields[name] = new string(buffer, 0, read);
                }
            }
        }
        catch (InvalidDataException e) when (e.Message.Contains("limit", StringComparison.OrdinalIgnoreCase))
        {
            upload.Dispose();
            throw new UploadTooLargeException(maxBytes);
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            upload.Dispose();
            throw new UploadTooLargeException(maxBytes);
        }
        catch (IOException e)
        {
            upload.Dispose();
            throw new BadUploadException($"the upload could not be read: {e.Message}");
        }
        catch
        {
            upload.Dispose();
            throw;
        }

        if (upload.FilePath is null)
        {
            upload.Dispose();
            throw new BadUploadException("the form has no 'file' part");
        }

        return upload;
    }

    private async Task CopyAsync(Stream body, long maxBytes, CancellationToken ct)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        await using var file = new FileStream(FilePath!, FileMode.CreateNew, FileAccess.Write, FileShare.None, 81920, useAsync: true);
        var buffer = new byte[81920];
        int n;
        while ((n = await body.ReadAsync(buffer, ct)) > 0)
        {
            Size += n;
            if (Size > maxBytes) throw new UploadTooLargeException(maxBytes);
            hash.AppendData(buffer, 0, n);
            await file.WriteAsync(buffer.AsMemory(0, n), ct);
        }

        Sha256 = Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>The temp file now belongs to someone else (moved into the store).</summary>
    public void Release() => FilePath = null;

    public void Dispose()
    {
        if (FilePath is not null && File.Exists(FilePath)) File.Delete(FilePath);
        FilePath = null;
    }
}

public static class UploadResults
{
    /// <summary>Maps upload failures to ProblemDetails (413, 400) or null.</summary>
    public static IResult? ForException(Exception e) => e switch
    {
        UploadTooLargeException t => TypedResults.Problem(t.Message, statusCode: StatusCodes.Status413PayloadTooLarge, title: "Upload too large"),
        BadUploadException b => TypedResults.Problem(b.Message, statusCode: StatusCodes.Status400BadRequest, title: "Bad upload"),
        _ => null,
    };
}
