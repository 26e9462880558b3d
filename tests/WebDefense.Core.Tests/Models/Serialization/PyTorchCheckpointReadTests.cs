using WebDefense.Core.Models;
using WebDefense.Core.Models.Serialization;
using static TorchSharp.torch;
using static WebDefense.Core.Tests.Models.Serialization.SerializationTestHelpers;

namespace WebDefense.Core.Tests.Models.Serialization;

/// <summary>Reads files written by PyTorch 1.13's torch.save (tools/fixtures/make_checkpoint_fixtures.py).</summary>
public sealed class PyTorchCheckpointReadTests
{
    private static StateDict Read(string fixture) => ReadWith(s => PyTorchCheckpoint.Read(s), fixture);

    [Theory]
    [InlineData("small_sd.pt")]
    [InlineData("protocol4.pt")]
    [InlineData("views.pt")]
    [InlineData("mixed_dtypes.pt")]
    public void Reads_plain_state_dicts_exactly(string fixture)
    {
        using var sd = Read(fixture);
        AssertMatchesExpected(sd, fixture);
    }

    [Fact]
    public void Small_state_dict_keeps_order_bn_statistics_and_num_batches_tracked()
    {
        using var sd = Read("small_sd.pt");
        Assert.Equal(
            ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked", "5.weight", "5.bias"],
            sd.Keys);
        Assert.Equal(3L, sd["1.num_batches_tracked"].item<long>());
        Assert.Empty(sd["1.num_batches_tracked"].shape);
        Assert.Equal(ScalarType.Int64, sd["1.num_batches_tracked"].dtype);
        Assert.True(sd["1.running_mean"].abs().sum().item<float>() > 0);
    }

    [Fact]
    public void Views_of_shared_storage_are_materialised_correctly()
    {
        using var sd = Read("views.pt");
        using var scope = NewDisposeScope();
        var full = sd["full"];
        Assert.True(sd["t"].eq(full.t()).all().item<bool>());
        Assert.True(sd["col"].eq(full[TensorIndex.Colon, 2]).all().item<bool>());
        Assert.True(sd["slice"].eq(full[TensorIndex.Slice(1, 3), TensorIndex.Slice(2, 5)]).all().item<bool>());
        Assert.True(sd["step"].eq(full.reshape(-1)[TensorIndex.Slice(1, null, 5)]).all().item<bool>());
        Assert.True(sd["t"].is_contiguous());
        // Each entry owns its data: writing one does not change another that shared the storage in the file.
        sd["alias"].zero_();
        Assert.Equal(0.25f, sd["full"][0, 1].item<float>());
    }

    [Fact]
    public void Unwraps_model_key_of_training_checkpoint()
    {
        using var sd = Read("wrapped_model.pt");
        AssertMatchesExpected(sd, "wrapped_model.pt");
    }

    [Fact]
    public void Unwraps_state_dict_key_and_strips_module_prefix()
    {
        using var sd = Read("wrapped_module_prefix.pt");
        AssertMatchesExpected(sd, "wrapped_module_prefix.pt");
        Assert.Equal("0.weight", sd.Keys.First());
    }

    [Fact]
    public void TorchScript_archive_is_rejected_as_torchscript()
    {
        var e = ReadPtRejects(File.ReadAllBytes(Fixture("torchscript.pt")));
        Assert.Contains("TorchScript", e.Message);
    }

    [Fact]
    public void Garbage_and_truncated_files_are_rejected()
    {
        Assert.Contains("no zip signature", ReadPtRejects("hello, this is not a model"u8.ToArray()).Message);
        var small = File.ReadAllBytes(Fixture("small_sd.pt"));
        var e = ReadPtRejects(small[..(small.Length / 2)]);
        Assert.Contains("zip", e.Message);
    }

    [Fact]
    public void Checkpoint_without_state_dict_lists_top_level_keys()
    {
        var pkl = new PickleBuilder().Proto(2).Op('}').Op('(').Str("epoch").Int(3).Str("optimizer").Op('}').Op('u').Op('.').Bytes();
        var e = ReadPtRejects(MakeZip(("a/data.pkl", pkl), ("a/version", "3\n"u8.ToArray())));
        Assert.Contains("'epoch' (int)", e.Message);
        Assert.Contains("'optimizer' (dict)", e.Message);
    }

    [Fact]
    public void Non_tensor_entries_of_a_state_dict_are_ignored()
    {
        var pkl = new PickleBuilder().OrderedDictStart()
            .Str("w").FloatTensor("0", 4, 0, [2, 2], [2, 1])
            .Str("note").Str("not a tensor")
            .EndDict();
        using var sd = PyTorchCheckpoint.Read(new MemoryStream(MakeZip(("a/data.pkl", pkl), ("a/data/0", new byte[16]))));
        Assert.Equal(["w"], sd.Keys);
    }

    [Fact]
    public void Reads_model_next_to_numpy_values()
    {
        using var sd = Read("numpy_wrapped.pt");
        AssertMatchesExpected(sd, "numpy_wrapped.pt");
    }
}
