using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using WebDefense.Server.Hosting;

namespace WebDefense.Server.Data;

public static class DataServices
{
    public static WebApplicationBuilder AddDataServices(this WebApplicationBuilder builder)
    {
        builder.Services.AddDbContext<AppDbContext>((sp, db) =>
        {
            var options = sp.GetRequiredService<IOptions<WebDefenseOptions>>().Value;
            Directory.CreateDirectory(options.DataPath);
            db.UseSqlite($"Data Source={Path.Combine(options.DataPath, "webdefense.db")};Default Timeout=30");
        });
        builder.Services.AddSingleton<ArtifactStore>();
        return builder;
    }
}
