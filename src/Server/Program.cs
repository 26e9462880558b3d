using WebDefense.Server.Auth;
using WebDefense.Server.Data;
using WebDefense.Server.Hosting;
using WebDefense.Server.Jobs;

if (args is ["worker", ..]) return WorkerEntryPoint.Run(args[1..]);
if (args is ["admin", ..]) return AdminCommand.Run(args[1..]);

var builder = WebApplication.CreateBuilder(new WebApplicationOptions
{
    Args = args,
    ContentRootPath = AppContext.BaseDirectory,
    WebRootPath = Path.Combine(AppContext.BaseDirectory, "wwwroot"),
});
builder.AddWebDefenseOptions();
if (builder.IsWorkerRole()) return WorkerHost.Run(builder);
builder.AddEngineServices();
builder.AddDataServices();
builder.AddAuthServices();
builder.AddJobServices();
builder.AddApiServices();
builder.AddApiPolicies();
builder.AddDashboard();

var app = builder.Build();
app.UseExceptionHandler();
app.UseStatusCodePages();
app.UseAuthentication();
app.UseApiPolicies();
app.UseAuthorization();
app.MapHealthApi();
app.MapWebDefenseApi();
app.MapJobsDashboard();
app.MapDashboard();
app.Run();
return 0;

/// <summary>Entry point marker for functional tests (WebApplicationFactory&lt;Program&gt;).</summary>
public partial class Program;
