using WebDefense.Server.Hosting;
using WebDefense.Server.Jobs;

if (args is ["worker", ..]) return WorkerEntryPoint.Run(args[1..]);

var builder = WebApplication.CreateBuilder(new WebApplicationOptions
{
    Args = args,
    ContentRootPath = AppContext.BaseDirectory,
    WebRootPath = Path.Combine(AppContext.BaseDirectory, "wwwroot"),
});
builder.AddEngineServices();
builder.Services.AddRazorComponents();

var app = builder.Build();
app.UseStaticFiles();
app.UseAntiforgery();
app.MapHealthApi();
app.MapRazorComponents<WebDefense.Client.App>();
app.Run();
return 0;

/// <summary>Entry point marker for functional tests (WebApplicationFactory&lt;Program&gt;).</summary>
public partial class Program;
