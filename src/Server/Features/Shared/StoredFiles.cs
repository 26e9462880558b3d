using Microsoft.EntityFrameworkCore;
using WebDefense.Server.Data;

namespace WebDefense.Server.Features.Shared;

public static class StoredFiles
{
    /// <summary>Whether any row still refers to a content-addressed file.</summary>
    public static async Task<bool> InUseAsync(AppDbContext db, string storedName, CancellationToken ct) =>
        await db.Models.AnyAsync(m => m.StoredName == storedName, ct)
        || await db.Datasets.AnyAsync(d => d.StoredName == storedName, ct)
        || await db.RunArtifacts.AnyAsync(a => a.StoredName == storedName, ct);
}
