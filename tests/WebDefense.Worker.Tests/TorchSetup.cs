using System.Runtime.CompilerServices;
using WebDefense.Core.Runtime;

namespace WebDefense.Worker.Tests;

internal static class TorchSetup
{
    /// <summary>Probe the native backend before any test touches <c>torch</c>.</summary>
#pragma warning disable CA2255 // a test assembly is the intended place for this initializer
    [ModuleInitializer]
    internal static void Probe() => TorchRuntime.EnsureAvailable();
#pragma warning restore CA2255
}
