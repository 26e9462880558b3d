using System.Buffers.Binary;
using System.Text;
using static TorchSharp.torch;

namespace WebDefense.Core.Models.Serialization;

/// <summary>Writes the protocol-2 <c>data.pkl</c> of a <c>torch.save</c>d state dict (the layout PyTorch itself writes).</summary>
internal static class PickleWriter
{
    /// <summary>
    /// <c>OrderedDict([(key, _rebuild_tensor_v2(storage_i, 0, size, contiguous_stride, False, OrderedDict()))…])</c>
    /// where storage i is the persistent id <c>('storage', torch.&lt;T&gt;Storage, 'i', 'cpu', numel)</c>.
    /// </summary>
    public static byte[] StateDictPickle(IReadOnlyList<(string Key, Tensor Tensor)> entries)
    {
        var ms = new MemoryStream();
        var w = new BinaryWriter(ms);
        w.Write((byte)0x80); // PROTO 2
        w.Write((byte)2);
        Global(w, "collections", "OrderedDict");
        w.Write((byte)')'); // EMPTY_TUPLE
        w.Write((byte)'R'); // REDUCE
        if (entries.Count > 0)
        {
            w.Write((byte)'('); // MARK
            for (var i = 0; i < entries.Count; i++)
            {
                var (key, t) = entries[i];
                var shape = t.shape;
                Unicode(w, key);
                Global(w, "torch._utils", "_rebuild_tensor_v2");
                w.Write((byte)'(');
                w.Write((byte)'(');
                Unicode(w, "storage");
                Global(w, "torch", TensorDTypes.StorageName(t.dtype));
                Unicode(w, i.ToString(System.Globalization.CultureInfo.InvariantCulture));
                Unicode(w, "cpu");
                Int(w, t.numel());
                w.Write((byte)'t'); // TUPLE
                w.Write((byte)'Q'); // BINPERSID
                Int(w, 0);
                LongTuple(w, shape);
                var stride = new long[shape.Length];
                long s = 1;
                for (var d = shape.Length - 1; d >= 0; d--)
                {
                    stride[d] = s;
                    s *= Math.Max(shape[d], 1);
                }

                LongTuple(w, stride);
                w.Write((byte)0x89); // NEWFALSE
                Global(w, "collections", "OrderedDict");
                w.Write((byte)')');
                w.Write((byte)'R');
                w.Write((byte)'t');
                w.Write((byte)'R');
            }

            w.Write((byte)'u'); // SETITEMS
        }

        w.Write((byte)'.'); // STOP
        w.Flush();
        return ms.ToArray();
    }

    private static void Global(BinaryWriter w, string module, string name)
    {
        w.Write((byte)'c');
        w.Write(Encoding.ASCII.GetBytes($"{module}\n{name}\n"));
    }

    private static void Unicode(BinaryWriter w, string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        w.Write((byte)'X');
        w.Write((uint)b.Length);
        w.Write(b);
    }

    private static void Int(BinaryWriter w, long v)
    {
        if (v is >= int.MinValue and <= int.MaxValue)
        {
            w.Write((byte)'J');
            w.Write((int)v);
        }
        else
        {
            w.Write((byte)0x8a); // LONG1, 8-byte two's complement little-endian
            w.Write((byte)8);
            Span<byte> b = stackalloc byte[8];
            BinaryPrimitives.WriteInt64LittleEndian(b, v);
            w.Write(b);
        }
    }

    private static void LongTuple(BinaryWriter w, long[] values)
    {
        if (values.Length == 0)
        {
            w.Write((byte)')');
            return;
        }

        w.Write((byte)'(');
        foreach (var v in values)
        {
            Int(w, v);
        }

        w.Write((byte)'t');
    }
}
