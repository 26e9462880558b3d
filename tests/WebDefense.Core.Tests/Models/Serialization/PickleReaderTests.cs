using System.Numerics;
using WebDefense.Core.Models;
using WebDefense.Core.Models.Serialization;

namespace WebDefense.Core.Tests.Models.Serialization;

/// <summary>
/// The restricted unpickler on pickles written by CPython 3.11's pickle.dumps (hex below) of
/// <c>{'f': 91.25, 'neg': -1.5e-300, 'big': 2**40, 'neg_big': -(2**70), 'i2': 40000, 'i1': 7, 'ineg': -5,
/// 't': (True, False, None), 'l': [1, 'x', b'raw'], 'k': {(1, 'a'): 'tuple-key'}}</c> (protocol 4 adds 's': {3}).
/// </summary>
public sealed class PickleReaderTests
{
    private const string Protocol2 =
        "80027d7100285801000000667101474056d0000000000058030000006e656771024781b01297d23ab683580300000062696771038a0600000000000158070000006e65675f62696771048a090000000000000000c05802000000693271054d409c5802000000693171064b075804000000696e656771074afbffffff580100000074710888894e87710958010000006c710a5d710b284b01580100000078710c635f636f646563730a656e636f64650a710d5803000000726177710e58060000006c6174696e31710f8671105271116558010000006b71127d71134b01580100000061711486711558090000007475706c652d6b6579711673752e";

    private const string Protocol4 =
        "800495a1000000000000007d94288c016694474056d000000000008c036e6567944781b01297d23ab6838c03626967948a060000000000018c076e65675f626967948a090000000000000000c08c026932944d409c8c026931944b078c04696e6567944afbffffff8c01749488894e87948c016c945d94284b018c017894430372617794658c0173948f94284b03908c016b947d944b018c01619486948c097475706c652d6b65799473752e";

    private static PickleDict Load(string hex) => (PickleDict)new PickleReader(
        Convert.FromHexString(hex), ModelReadLimits.Default,
        (m, n) => NumpyValues.Resolve($"{m}.{n}") ?? throw new ModelFileException($"pickle GLOBAL '{m}.{n}' is not allowed"),
        _ => throw new ModelFileException("no persistent ids here")).Load()!;

    private static object? Get(PickleDict d, string key) => d.TryGet(key, out var v) ? v : throw new KeyNotFoundException(key);

    [Theory]
    [InlineData(Protocol2)]
    [InlineData(Protocol4)]
    public void Decodes_CPython_pickles(string hex)
    {
        var d = Load(hex);
        Assert.Equal(91.25, Get(d, "f"));
        Assert.Equal(-1.5e-300, Get(d, "neg"));
        Assert.Equal(1L << 40, Get(d, "big"));
        Assert.Equal(-BigInteger.Pow(2, 70), Get(d, "neg_big"));
        Assert.Equal(40000L, Get(d, "i2"));
        Assert.Equal(7L, Get(d, "i1"));
        Assert.Equal(-5L, Get(d, "ineg"));
        Assert.Equal(new object?[] { true, false, null }, (object?[])Get(d, "t")!);
        var list = (List<object?>)Get(d, "l")!;
        Assert.Equal(1L, list[0]);
        Assert.Equal("x", list[1]);
        Assert.Equal("raw"u8.ToArray(), (byte[])list[2]!);
        Assert.Equal("tuple-key", Get((PickleDict)Get(d, "k")!, "1.a"));
    }

    [Fact]
    public void Protocol4_set_uses_EMPTY_SET_and_ADDITEMS()
    {
        Assert.Equal([3L], (List<object?>)Get(Load(Protocol4), "s")!);
    }

    [Fact]
    public void Truncated_pickle_is_refused()
    {
        var e = Assert.Throws<ModelFileException>(() => Load(Protocol4[..100]));
        Assert.Contains("truncated", e.Message);
    }
}
