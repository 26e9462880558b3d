using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;
using WebDefense.Core.Runtime;
using WebDefense.Server.Data;

namespace WebDefense.Server.Hosting;

/// <summary>The <c>WebDefense</c> configuration section.</summary>
public sealed class WebDefenseOptions
{
    public const string Section = "WebDefense";

    /// <summary>Database, uploads and artifacts; a relative path is resolved against the content root.</summary>
    [Required]
    public string DataDirectory { get; set; } = "data";

    [Range(1, long.MaxValue)]
    public long MaxModelUploadBytes { get; set; } = 512L * 1024 * 1024;

    [Range(1, long.MaxValue)]
    public long MaxDatasetUploadBytes { get; set; } = 1024L * 1024 * 1024;

    /// <summary>Runs executed at the same time (Hangfire workers on the runs queue).</summary>
    [Range(1, 64)]
    public int WorkerCount { get; set; } = 1;

    /// <summary>
    /// The Linux nice value of run worker processes (0–19; 0 = the server's own priority). With the default 10 the web
    /// server's requests go first when a run keeps every core busy (docs/results/api-load.md); a run on an otherwise
    /// idle machine is not slowed.
    /// </summary>
    [Range(0, 19)]
    public int WorkerNice { get; set; } = 10;

    /// <summary>Torch threads per run; 0 = one per core.</summary>
    [Range(0, 256)]
    public int TorchThreads { get; set; }

    /// <summary>auto (cuda:0 when libtorch sees a GPU, else cpu), cpu, cuda or cuda:N. Runs go to the queue of its kind.</summary>
    [RegularExpression("^(auto|cpu|cuda(:[0-9]{1,3})?)$", ErrorMessage = "Device must be auto, cpu, cuda or cuda:N")]
    public string Device { get; set; } = "auto";

    /// <summary>What this process does: serve the API and UI (web), execute runs (worker), or both (all).</summary>
    public ProcessRole Role { get; set; } = ProcessRole.All;

    /// <summary>sqlite: one machine (SQLite file, in-memory job queue). postgres: the database and the job queue in PostgreSQL.</summary>
    public StorageKind Storage { get; set; } = StorageKind.Sqlite;

    /// <summary>An executing worker renews its claim on a run this often × 6; a claim not renewed for this long is taken over.</summary>
    [Range(5, 3600)]
    public int RunLeaseSeconds { get; set; } = 60;

    /// <summary>PostgreSQL queue: a job whose worker stopped its heartbeat for this long is handed to another worker.</summary>
    [Range(10, 86400)]
    public int InvisibilityTimeoutSeconds { get; set; } = 300;

    /// <summary>PostgreSQL queue: how often idle workers look for jobs.</summary>
    [Range(1, 300)]
    public int QueuePollSeconds { get; set; } = 5;

    /// <summary>Runs one team may have queued or running at once; more answer 429, so that one team cannot fill the queue for all.</summary>
    [Range(1, 100000)]
    public int MaxActiveRunsPerTeam { get; set; } = 50;

    [Required]
    public BootstrapOptions Bootstrap { get; set; } = new();

    /// <summary>Failed-login throttling (429 with Retry-After; accounts are never locked).</summary>
    [Required]
    public Auth.LoginOptions Login { get; set; } = new();

    /// <summary>Per-user request limits on /api (429 with Retry-After).</summary>
    [Required]
    public RateLimitOptions RateLimit { get; set; } = new();

    /// <summary>Origins allowed to call the API from a browser; none by default.</summary>
    [Required]
    public CorsOptions Cors { get; set; } = new();

    /// <summary>Absolute data directory (set after binding).</summary>
    public string DataPath => Path.GetFullPath(DataDirectory, AppContext.BaseDirectory);
    public string ArtifactsPath => Path.Combine(DataPath, "artifacts");
    public string WorkPath => Path.Combine(DataPath, "work");
    public string TempPath => Path.Combine(DataPath, "tmp");

    public bool ServesWeb => Role is ProcessRole.All or ProcessRole.Web;
    public bool ExecutesRuns => Role is ProcessRole.All or ProcessRole.Worker;
}

public enum ProcessRole { All, Web, Worker }

public enum StorageKind { Sqlite, Postgres }

/// <summary>What the first start creates: the admin, the "default" team, an admin API key and the demo data.</summary>
public sealed class BootstrapOptions
{
    [EmailAddress]
    public string AdminEmail { get; set; } = "admin@webdefense.local";

    /// <summary>Null: a password is generated and logged once.</summary>
    public string? AdminPassword { get; set; }

    /// <summary>Null: a key is generated and logged once.</summary>
    [MinLength(24)]
    public string? AdminApiKey { get; set; }

    /// <summary>Seed the demo model and Fashion-MNIST data sets on first start.</summary>
    public bool SeedDemo { get; set; } = true;
}

internal sealed class WebDefenseOptionsValidator(IConfiguration configuration) : IValidateOptions<WebDefenseOptions>
{
    public ValidateOptionsResult Validate(string? name, WebDefenseOptions options)
    {
        var failures = new List<string>();
        var context = new ValidationContext(options.Bootstrap);
        var results = new List<ValidationResult>();
        if (!Validator.TryValidateObject(options.Bootstrap, context, results, validateAllProperties: true))
        {
            failures.AddRange(results.Select(r => $"WebDefense:Bootstrap: {r.ErrorMessage}"));
        }

        if (string.IsNullOrWhiteSpace(options.DataDirectory) || options.DataDirectory.IndexOfAny(Path.GetInvalidPathChars()) >= 0)
        {
            failures.Add("WebDefense:DataDirectory must be a valid path");
        }

        if (options.Bootstrap.AdminPassword is { Length: < 8 })
        {
            failures.Add("WebDefense:Bootstrap:AdminPassword needs at least 8 characters");
        }

        if (options.Role != ProcessRole.All && options.Storage != StorageKind.Postgres)
        {
            failures.Add($"WebDefense:Role {options.Role} needs WebDefense:Storage postgres (the SQLite setup keeps its job queue in memory, inside one process)");
        }

        if (options.Storage == StorageKind.Postgres && string.IsNullOrWhiteSpace(configuration.GetConnectionString(DataServices.ConnectionStringName)))
        {
            failures.Add($"WebDefense:Storage postgres needs ConnectionStrings:{DataServices.ConnectionStringName}");
        }

        if (options.Device.StartsWith(ComputeDevice.Cuda, StringComparison.Ordinal) && options.WorkerCount != 1)
        {
            failures.Add("WebDefense:WorkerCount must be 1 with a CUDA device (one run per GPU: start one worker process per GPU with Device cuda:N)");
        }

        return failures.Count > 0 ? ValidateOptionsResult.Fail(failures) : ValidateOptionsResult.Success;
    }
}

public static class OptionsServices
{
    /// <summary>The options as configured, for what must be decided while the services are registered (before they can be resolved).</summary>
    public static WebDefenseOptions BoundWebDefenseOptions(this WebApplicationBuilder builder) =>
        builder.Configuration.GetSection(WebDefenseOptions.Section).Get<WebDefenseOptions>() ?? new WebDefenseOptions();

    public static WebApplicationBuilder AddWebDefenseOptions(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<WebDefenseOptions>()
            .BindConfiguration(WebDefenseOptions.Section)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<WebDefenseOptions>, WebDefenseOptionsValidator>();
        return builder;
    }
}
