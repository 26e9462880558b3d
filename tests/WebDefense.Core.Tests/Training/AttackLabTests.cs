using WebDefense.Core.Data;
using WebDefense.Core.Data.Triggers;
using WebDefense.Core.Evaluation;
using WebDefense.Core.Models;
using WebDefense.Core.Tests.Data;
using WebDefense.Core.Training;

namespace WebDefense.Core.Tests.Training;

public class AttackLabTests
{
    private static ImageDataset Rows(ImageDataset data, int from, int count) => data.Subset(Enumerable.Range(from, count).Select(i => (long)i).ToArray());

    [Fact]
    public void Same_seed_gives_the_same_backdoored_model()
    {
        using var test = TestData.FashionMnistTest();
        using var train = Rows(test, 0, 2000);
        var options = AttackLab.Recipe(1, InputSpec.Grey28);
        using var a = AttackLab.Train("smallcnn", 10, InputSpec.Grey28, train, AttackSpec.BadNets, options, seed: 7);
        using var b = AttackLab.Train("smallcnn", 10, InputSpec.Grey28, train, AttackSpec.BadNets, options, seed: 7);
        using var c = AttackLab.Train("smallcnn", 10, InputSpec.Grey28, train, AttackSpec.BadNets, options, seed: 8);
        Assert.Equal(200, a.PoisonedIndices.Count);
        Assert.Equal(a.PoisonedIndices, b.PoisonedIndices);
        Assert.NotEqual(a.PoisonedIndices, c.PoisonedIndices);
        using var sa = StateDict.FromModule(a.Model.Module);
        using var sb = StateDict.FromModule(b.Model.Module);
        using var sc = StateDict.FromModule(c.Model.Module);
        Assert.All(sa.Keys, k => Assert.True(sa[k].eq(sb[k]).all().item<bool>(), $"{k} differs between two runs with seed 7"));
        Assert.False(sa["fc.weight"].eq(sc["fc.weight"]).all().item<bool>());
    }

    [Fact]
    public void The_backdoor_is_learned()
    {
        using var test = TestData.FashionMnistTest();
        using var train = Rows(test, 0, 8000);
        using var holdout = Rows(test, 8000, 2000);
        using var model = AttackLab.Train("smallcnn", 10, InputSpec.Grey28, train, AttackSpec.BadNets, AttackLab.Recipe(5, InputSpec.Grey28) with { Augment = Augmentation.None }, seed: 7);
        using var bd = BackdoorTestSet.Build(holdout, PatchTrigger.BadNets, 0);
        var metrics = Evaluator.Evaluate(model.Model, holdout, bd.Data, 0);
        Assert.True(metrics.Asr > 0.5, $"ASR {metrics.Asr:P1} after 5 epochs on 8,000 samples");
        Assert.True(metrics.Acc > 0.6, $"ACC {metrics.Acc:P1}");
    }
}
