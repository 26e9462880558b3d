using TorchSharp;
using System.Diagnostics;
using System.IO.Compression;
using System.Text.Json;
using WebDefense.Core.Data;
using WebDefense.Core.Data.Triggers;
using WebDefense.Core.Defenses;
using WebDefense.Core.Defenses.Framework;
using WebDefense.Core.Models;
using WebDefense.Core.Models.Zoo;
using WebDefense.Core.Runtime;
using WebDefense.Core.Training;
using static TorchSharp.torch;

namespace WebDefense.Experiments;

/// <summary>
/// Issue 19's check on a GPU machine, as one command (tools/gpu/check.sh runs it): the interop fixtures' logits on
/// cuda:0 against PyTorch's, then a PreActResNet-18 BadNets victim trained on the GPU, and RNP and FT on it with 500
/// CIFAR-10 images on the CPU and on cuda:0 with the same seed (same chosen point? metrics within 0.5 points?), with
/// wall times. Writes one JSON report (--out) and prints it; exit 0 when every check passed, 1 when one failed, 2
/// when libtorch sees no CUDA device.
/// </summary>
internal static class GpuCheckCommand
{
    private const double LogitTolerance = 1e-4;
    private const double MetricTolerance = 0.005;

    public static int Run(ExperimentOptions options)
    {
        var info = TorchRuntime.EnsureAvailable();
        var output = options.Text("out", "gpu-check.json");
        var report = new Dictionary<string, object?>
        {
            ["native_library"] = info.NativeLibrary,
            ["cuda_available"] = info.CudaAvailable,
            ["cuda_device_count"] = info.CudaDeviceCount,
            ["cpu_threads"] = info.Threads,
        };
        if (!info.CudaAvailable)
        {
            return Write(report, output, 2);
        }

        backends.cuda.matmul.allow_tf32 = false;
        backends.cudnn.allow_tf32 = false;
        var gpu = device(options.Text("device", "cuda:0"));
        var failures = new List<string>();
        report["parity"] = Parity(options.Text("fixtures", "tests/fixtures/interop"), gpu, failures);

        var data = options.Text("data", "../shared/data/cifar10-jpeg");
        using var train = DatasetReader.Read(Path.Combine(data, "cifar10-jpeg-train.tar.gz"));
        using var test = DatasetReader.Read(Path.Combine(data, "cifar10-jpeg-test.tar.gz"));
        using var trainSlice = DefenseStudy.BalancedSample(train.Data, options.Int("train-per-class", 2000), 0);
        using var testSlice = DefenseStudy.BalancedSample(test.Data, options.Int("test-per-class", 200), 0);
        var attack = AttackSpec.BadNets;
        using var backdoorTest = BackdoorTestSet.Build(testSlice, attack.Trigger, attack.TargetLabel);

        // The victim is trained on the GPU (it is the input of the comparison, not part of it).
        var watch = Stopwatch.StartNew();
        var input = InputSpec.Cifar10;
        using var poisoned = Poisoning.Poison(trainSlice, attack.Trigger, attack.TargetLabel, attack.PoisonRatio, attack.CleanLabel, 0);
        random.manual_seed(0);
        using var victim = ModelZoo.CreateClassifier("preactresnet18", 10, input).MoveTo(gpu);
        new TrainingLoop { Model = victim, Data = poisoned.Data, Options = AttackLab.Recipe(options.Int("victim-epochs", 8), input, 0.05) }.Run(new Random(0));
        victim.Module.eval();
        var victimMetrics = WebDefense.Core.Evaluation.Evaluator.Evaluate(victim, testSlice, backdoorTest.Data, attack.TargetLabel);
        report["victim"] = new { architecture = "preactresnet18", train_images = poisoned.Data.Count, seconds = watch.Elapsed.TotalSeconds, acc = victimMetrics.Acc, asr = victimMetrics.Asr };
        victim.MoveTo(CPU);

        using var clean = DefenseStudy.BalancedSample(train.Data, 50, 1000);
        var runs = new List<object>();
        foreach (var (name, parameters) in new[] { ("rnp", new Dictionary<string, object>()), ("ft", new Dictionary<string, object> { ["epochs"] = options.Int("ft-epochs", 10) }) })
        {
            var results = new Dictionary<string, DefenseResult>();
            foreach (var on in new[] { CPU, gpu })
            {
                var result = DefenseRunner.Run(new DefenseRequest
                {
                    Defense = DefenseCatalog.Get(name), Model = victim, CleanData = clean, TargetLabel = attack.TargetLabel, Seed = 0,
                    Parameters = parameters, TestSet = testSlice, BackdoorTestSet = backdoorTest.Data, Device = on,
                });
                results[on.type == DeviceType.CUDA ? "cuda" : "cpu"] = result;
                runs.Add(new
                {
                    defense = name, device = on.ToString(), chosen = result.Chosen.X, rule = result.Chosen.Rule, seconds = result.WallTime.TotalSeconds,
                    acc = result.After!.Acc, asr = result.After.Asr, ra = result.After.Ra, outcome = result.Outcome.Outcome,
                });
            }

            var (cpu, cuda) = (results["cpu"], results["cuda"]);
            if (cpu.Chosen.X != cuda.Chosen.X) failures.Add($"{name}: chosen point {cpu.Chosen.X} on cpu, {cuda.Chosen.X} on cuda");
            foreach (var (metric, a, b) in new[] { ("ACC", cpu.After!.Acc, cuda.After!.Acc), ("ASR", cpu.After.Asr!.Value, cuda.After.Asr!.Value), ("RA", cpu.After.Ra!.Value, cuda.After.Ra!.Value) })
            {
                if (Math.Abs(a - b) > MetricTolerance) failures.Add($"{name}: {metric} {a:P2} on cpu, {b:P2} on cuda");
            }

            foreach (var result in results.Values) result.Dispose();
        }

        report["defenses"] = runs;
        report["failures"] = failures;
        return Write(report, output, failures.Count == 0 ? 0 : 1);
    }

    /// <summary>The PyTorch-written fixtures (weights, input, logits) through the zoo on the CPU and on the GPU.</summary>
    private static List<object> Parity(string fixtures, Device gpu, List<string> failures)
    {
        var rows = new List<object>();
        foreach (var (arch, channels, side) in new[] { ("smallcnn", 1, 28), ("preactresnet18", 3, 32) })
        {
            using var scope = NewDisposeScope();
            using var module = ModelZoo.Create(arch, 10, channels);
            module.load(Fixture(fixtures, $"{arch}.dat"));
            module.eval();
            using var noGrad = no_grad();
            var x = Floats(Fixture(fixtures, $"{arch}_input.f32"), 4, channels, side, side);
            var expected = Floats(Fixture(fixtures, $"{arch}_logits.f32"), 4, 10);
            var onCpu = ((nn.IModule<Tensor, Tensor>)module).call(x);
            module.to(gpu);
            var onGpu = ((nn.IModule<Tensor, Tensor>)module).call(x.to(gpu)).cpu();
            var cpuDiff = onCpu.sub(expected).abs().max().item<float>();
            var gpuDiff = onGpu.sub(expected).abs().max().item<float>();
            if (gpuDiff > LogitTolerance) failures.Add($"{arch}: max |Δlogit| {gpuDiff:E2} on cuda against PyTorch's");
            rows.Add(new { model = arch, cpu_max_abs_diff = cpuDiff, cuda_max_abs_diff = gpuDiff, tolerance = LogitTolerance });
        }

        return rows;
    }

    /// <summary>A fixture file, decompressed from <c>name.gz</c> into the temp folder when only that is there.</summary>
    private static string Fixture(string dir, string name)
    {
        var plain = Path.Combine(dir, name);
        if (File.Exists(plain)) return plain;
        var target = Path.Combine(Path.GetTempPath(), $"gpu-check-{name}");
        using var source = new GZipStream(File.OpenRead(plain + ".gz"), CompressionMode.Decompress);
        using var destination = File.Create(target);
        source.CopyTo(destination);
        return target;
    }

    private static Tensor Floats(string path, params long[] shape)
    {
        var bytes = File.ReadAllBytes(path);
        var values = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, values, 0, values.Length * 4);
        return tensor(values, shape);
    }

    private static int Write(Dictionary<string, object?> report, string output, int code)
    {
        report["exit_code"] = code;
        var json = JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true });
        File.WriteAllText(output, json);
        Console.WriteLine(json);
        return code;
    }
}
