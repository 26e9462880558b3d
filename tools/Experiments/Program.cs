using WebDefense.Core.Runtime;
using WebDefense.Experiments;

TorchRuntime.EnsureAvailable();
var command = args.FirstOrDefault() ?? "help";
var options = ExperimentOptions.Parse(args.Skip(1).ToArray());
TorchRuntime.UseThreads(options.Int("threads", Environment.ProcessorCount));
ExperimentDevice.Current = TorchSharp.torch.device(options.Text("device", "cpu"));
switch (command)
{
    case "attack":
        AttackCommand.Run(options);
        break;
    case "make-fixtures":
        FixtureCommand.Run(options);
        break;
    case "trace":
        TraceCommand.Run(options);
        break;
    case "seed-defenses":
        SeedDefensesCommand.Run(options);
        break;
    case "all-defenses":
        AllDefensesCommand.Run(options);
        break;
    case "advrbd":
        AdvrBdCommand.Run(options);
        break;
    case "advrbd-scores":
        AdvrBdScoresCommand.Run(options);
        break;
    case "scan":
        ScanCommand.Run(options);
        break;
    case "byom":
        BringYourOwnCommand.Run(options);
        break;
    case "api-load":
        ApiLoadCommand.Run(options);
        break;
    case "cifar10":
        Cifar10Command.Run(options);
        break;
    case "gpu-check":
        Environment.ExitCode = GpuCheckCommand.Run(options);
        break;
    case "run-wait":
        RunWaitCommand.Run(options);
        break;
    default:
        Console.WriteLine("""
            usage: dotnet run --project tools/Experiments -c Release -- COMMAND [--key value ...]
              attack          train BadNets and Blended SmallCnn models on Fashion-MNIST and print ACC/ASR/RA
                              (--epochs 8 --lr 0.05 --seed 0)
              make-fixtures   write the backdoored Fashion-MNIST model the tests and the demo use
                              (--out demo --epochs 8)
              trace           run one defense on the demo model and print its trajectory
                              (--defense rnp --per-class 50 --seed 0 --params key=value,key=value); or any model
                              on data files: --model FILE --clean F --test F --backdoor-test F (TRUE labels)
                              [--architecture NAME for a state dict] --input 3,32,32 --classes 10 --target 0
              seed-defenses   Grad-Prune and RNP over several seeds on BadNets and Blended models; writes
                              docs/results/seed-defenses.md (--seeds 5 --epochs 8 --cache artifacts/experiments)
              all-defenses    every defense of the catalog on BadNets, Blended and SIG models; writes
                              docs/results/all-defenses.md and its ACC-vs-ASR scatter
                              (--seeds 5 --per-class 100 --defenses name,name to run a subset;
                              --seed-list 0,2,4 / --attacks badnets,sig to share the work between processes)
              advrbd          AdvrBD (training-time) on Fashion-MNIST poisoned by BadNets, Blended, SIG; with the
                              undefended and clean-only baselines; resumable log in --cache; --out writes the report
                              (--per-class 2000 --ratios 0.05,0.1 --seed-list 0,1,2 --attacks badnets,blended,sig
                              --params key=value,key=value --tag NAME --out docs/results/advrbd.md; --report-only 1
                              writes the report from the log without running anything)
              advrbd-scores   how well AdvrBD's consistency score separates poisoned samples (AUROC) over a grid
                              (--attack badnets --ratio 0.1 --per-class 500 --warmup 2 --radii 1,3,5 --eps 0.1,0.25,0.5 --steps 5)
              scan            the backdoor scan on attack-lab Fashion-MNIST models (--attacks badnets,blended,sig,clean
                              --seed-list 0,1,2 --epochs 4 --train-size 20000 --per-class 50) or on a model file (--model F
                              --clean F [--test F --backdoor-test F] --target N --name NAME --input 3,32,32); --defenses rnp,ft
                              adds blind vs scan-assisted purification; resumable log --log; --out writes the report
              byom            every checkpoint in ../shared/data/models loaded with nothing declared (format, unwrapped,
                              architecture found, or the message), then ACC/ASR by our evaluator next to PyTorch's from
                              tools/fixtures/byom_reference.py (--models DIR --reference artifacts/byom --out FILE.md)
              api-load        read latency of a running service while one run executes (starts an FT run on its demo
                              model, cancels it at the end): --base URL --key API_KEY (or WD_KEY) --clients 30
                              --seconds 60 --warmup 10 (s for the run to start computing) --warm 15 (s of
                              uncounted load first) --rate R (requests/s per client; 0 = back to back) --label TEXT;
                              --run 0 measures with no run executing; --out FILE appends the table
              run-wait        where a run's time goes, through a running service: --runs runs (seeds 1, 2, …) of --defense
                              on --model ID --clean ID --test ID --backdoor-test ID --target N [--params k=v,k=v],
                              each split into queueing, worker start, loading, evaluations and the defense (--out FILE)
              cifar10         issue 18's study: --phase train --attack badnets|blended --epochs 15 --lr 0.02 trains a ResNet-18
                              victim on the 50,000 CIFAR-10 training JPEGs (--dir artifacts/cifar10); --phase defend runs
                              Grad-Prune (10 and 100 per class), RNP, TSBD, ANP and FT-SAM on both victims (--seeds 3
                              --seed-list 0,1 --defenses rnp,tsbd --set 'anp:nb_iter=500' to override a parameter);
                              --phase report rewrites the generated part of docs/results/cifar10-resnet18.md from the log
              gpu-check       issue 19's check on a GPU machine (tools/gpu/check.sh): fixture logits on cuda, a PreActResNet-18
                              victim, RNP and FT on cpu and cuda with one seed (--data DIR --fixtures DIR --out FILE.json)
            every command: --threads N (torch threads, default: the number of cores); --device cpu|cuda|cuda:N (default cpu)
            """);
        break;
}
