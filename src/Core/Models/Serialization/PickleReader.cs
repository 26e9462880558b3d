using System.Buffers.Binary;
using System.Numerics;
using System.Text;

namespace WebDefense.Core.Models.Serialization;

/// <summary>
/// A restricted unpickler. It never executes anything: it interprets an allowlist of opcodes (those of PyTorch's
/// <c>weights_only</c> loader plus the protocol-4 framing opcodes) and hands every GLOBAL to
/// <paramref name="resolveGlobal"/>, which returns an inert C# value (a <see cref="PickleCallable"/> or a token) or
/// throws. Values: None → null, bool, long, BigInteger (LONG1 beyond 64 bits), double, string, byte[],
/// object?[] (tuple), List&lt;object?&gt; (list and set), <see cref="PickleDict"/>.
/// </summary>
internal sealed class PickleReader(
    ReadOnlyMemory<byte> data,
    ModelReadLimits limits,
    Func<string, string, object> resolveGlobal,
    Func<object?, object?> persistentLoad)
{
    private static readonly object Mark = new();
    private readonly List<object?> _stack = [];
    private readonly Stack<List<object?>> _metastack = new();
    private readonly Dictionary<long, object?> _memo = [];
    private int _pos;
    private int _savedCount; // items held in _metastack, counted against the stack limit

    /// <summary>Bytes consumed so far; after <see cref="Load"/>, the offset just past STOP.</summary>
    public int Position => _pos;

    /// <summary>Reads one pickled object (up to STOP).</summary>
    public object? Load()
    {
        if (data.Length > limits.MaxPickleBytes)
        {
            throw new ModelFileException($"pickle is {data.Length} bytes, more than the limit of {limits.MaxPickleBytes}");
        }

        var stack = _stack;
        while (true)
        {
            var at = _pos;
            var op = ReadByte();
            switch (op)
            {
                case 0x80: // PROTO
                    var proto = ReadByte();
                    if (proto > 5)
                    {
                        throw new ModelFileException($"pickle protocol {proto} is not supported");
                    }

                    break;
                case 0x95: // FRAME (length is advisory)
                    Take(8);
                    break;
                case (byte)'.': // STOP
                    if (stack.Count != 1 || _metastack.Count != 0)
                    {
                        throw new ModelFileException("pickle STOP with an unbalanced stack");
                    }

                    return stack[0];
                case (byte)'(': // MARK
                    if (_metastack.Count >= limits.MaxPickleNesting)
                    {
                        throw new ModelFileException($"pickle nesting is deeper than the limit of {limits.MaxPickleNesting}");
                    }

                    _metastack.Push([.. stack]);
                    _savedCount += stack.Count;
                    stack.Clear();
                    break;
                case (byte)')': Push(Array.Empty<object?>()); break;
                case (byte)'t': Push(PopMark().ToArray()); break;
                case 0x85: Push(new[] { Pop() }); break; // TUPLE1
                case 0x86: // TUPLE2
                {
                    var b = Pop();
                    var a = Pop();
                    Push(new[] { a, b });
                    break;
                }

                case 0x87: // TUPLE3
                {
                    var c = Pop();
                    var b = Pop();
                    var a = Pop();
                    Push(new[] { a, b, c });
                    break;
                }

                case (byte)']': Push(new List<object?>()); break; // EMPTY_LIST
                case 0x8f: Push(new List<object?>()); break; // EMPTY_SET
                case (byte)'a': // APPEND
                {
                    var v = Pop();
                    AsList(Peek(), "APPEND").Add(v);
                    break;
                }

                case (byte)'e': // APPENDS
                case 0x90: // ADDITEMS
                {
                    var items = PopMark();
                    AsList(Peek(), op == 0x90 ? "ADDITEMS" : "APPENDS").AddRange(items);
                    break;
                }

                case (byte)'}': Push(new PickleDict()); break; // EMPTY_DICT
                case (byte)'s': // SETITEM
                {
                    var v = Pop();
                    var k = Pop();
                    AsDict(Peek(), "SETITEM").Set(k, v);
                    break;
                }

                case (byte)'u': // SETITEMS
                {
                    var items = PopMark();
                    if (items.Count % 2 != 0)
                    {
                        throw new ModelFileException("pickle SETITEMS with an odd number of items");
                    }

                    var d = AsDict(Peek(), "SETITEMS");
                    for (var i = 0; i < items.Count; i += 2)
                    {
                        d.Set(items[i], items[i + 1]);
                    }

                    break;
                }

                case (byte)'N': Push(null); break;
                case 0x88: Push(true); break;
                case 0x89: Push(false); break;
                case (byte)'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(Take(4))); break;
                case (byte)'K': Push((long)ReadByte()); break;
                case (byte)'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(Take(2))); break;
                case 0x8a: // LONG1
                {
                    var n = ReadByte();
                    var bytes = Take(n);
                    var big = new BigInteger(bytes, isUnsigned: false, isBigEndian: false);
                    Push(big >= long.MinValue && big <= long.MaxValue ? (object)(long)big : big);
                    break;
                }

                case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(Take(8))); break; // BINFLOAT
                case (byte)'X': Push(ReadUtf8(BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))); break;
                case 0x8c: Push(ReadUtf8(ReadByte())); break; // SHORT_BINUNICODE
                case 0x8d: Push(ReadUtf8(BinaryPrimitives.ReadUInt64LittleEndian(Take(8)))); break; // BINUNICODE8
                case (byte)'U': Push(Encoding.Latin1.GetString(Take(ReadByte()))); break; // SHORT_BINSTRING
                case (byte)'C': Push(Take(ReadByte()).ToArray()); break; // SHORT_BINBYTES
                case (byte)'B': Push(Take(CheckLength(BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))).ToArray()); break;
                case (byte)'c': // GLOBAL
                {
                    var module = ReadLine();
                    var name = ReadLine();
                    Push(resolveGlobal(module, name));
                    break;
                }

                case 0x93: // STACK_GLOBAL
                {
                    var name = Pop() as string;
                    var module = Pop() as string;
                    if (name is null || module is null)
                    {
                        throw new ModelFileException("pickle STACK_GLOBAL without string module and name");
                    }

                    Push(resolveGlobal(module, name));
                    break;
                }

                case (byte)'R': // REDUCE
                {
                    var args = Pop() as object?[] ?? throw new ModelFileException("pickle REDUCE without an argument tuple");
                    Push(Call(Pop(), args, "REDUCE"));
                    break;
                }

                case 0x81: // NEWOBJ
                {
                    var args = Pop() as object?[] ?? throw new ModelFileException("pickle NEWOBJ without an argument tuple");
                    Push(Call(Pop(), args, "NEWOBJ"));
                    break;
                }

                case (byte)'b': // BUILD
                {
                    var state = Pop();
                    var target = Peek();
                    if (target is PickleDict d)
                    {
                        d.State = state;
                    }
                    else if (target is IPickleBuildable b)
                    {
                        b.Build(state);
                    }
                    else if (target is TensorRef)
                    {
                        // _rebuild_tensor_v2 results may get a BUILD with Python attributes (e.g. from a tensor subclass): ignored.
                    }
                    else
                    {
                        throw new ModelFileException($"pickle BUILD on a {Describe(target)} is not allowed");
                    }

                    break;
                }

                case (byte)'Q': Push(persistentLoad(Pop())); break; // BINPERSID
                case (byte)'h': Push(MemoGet(ReadByte())); break; // BINGET
                case (byte)'j': Push(MemoGet(BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))); break; // LONG_BINGET
                case (byte)'q': MemoPut(ReadByte()); break; // BINPUT
                case (byte)'r': MemoPut(BinaryPrimitives.ReadUInt32LittleEndian(Take(4))); break; // LONG_BINPUT
                case 0x94: MemoPut(_memo.Count); break; // MEMOIZE
                default:
                    throw new ModelFileException($"pickle opcode 0x{op:x2} ('{(op is >= 32 and < 127 ? (char)op : '?')}') at byte {at} is not allowed");
            }
        }
    }

    /// <summary>A short description of a pickle value for error messages.</summary>
    public static string Describe(object? v) => v switch
    {
        null => "None",
        PickleCallable c => c.QualifiedName,
        StorageTypeToken s => "torch." + s.Name,
        PickleDict => "dict",
        object?[] => "tuple",
        List<object?> => "list",
        TensorRef => "tensor",
        NumpyArray => "numpy.ndarray",
        NumpyScalar n => $"numpy scalar {n.DType}",
        NumpyDType => "numpy.dtype",
        byte[] => "bytes",
        double => "float",
        bool => "bool",
        string => "str",
        long or BigInteger => "int",
        _ => v.GetType().Name,
    };

    private static object? Call(object? callable, object?[] args, string op) => callable is PickleCallable c
        ? c.Invoke(args)
        : throw new ModelFileException($"pickle {op} on a {Describe(callable)}, which is not callable");

    private static List<object?> AsList(object? v, string op) =>
        v as List<object?> ?? throw new ModelFileException($"pickle {op} on a {Describe(v)}");

    private static PickleDict AsDict(object? v, string op) =>
        v as PickleDict ?? throw new ModelFileException($"pickle {op} on a {Describe(v)}");

    private void Push(object? v)
    {
        if (_stack.Count + _savedCount >= limits.MaxPickleStackSize)
        {
            throw new ModelFileException($"pickle stack is larger than the limit of {limits.MaxPickleStackSize}");
        }

        _stack.Add(v);
    }

    private object? Pop()
    {
        if (_stack.Count == 0)
        {
            throw new ModelFileException("pickle pops from an empty stack");
        }

        var v = _stack[^1];
        _stack.RemoveAt(_stack.Count - 1);
        return v;
    }

    private object? Peek() => _stack.Count > 0 ? _stack[^1] : throw new ModelFileException("pickle reads an empty stack");

    private List<object?> PopMark()
    {
        if (_metastack.Count == 0)
        {
            throw new ModelFileException("pickle uses MARK items without a MARK");
        }

        var items = new List<object?>(_stack);
        _stack.Clear();
        var saved = _metastack.Pop();
        _savedCount -= saved.Count;
        _stack.AddRange(saved);
        return items;
    }

    private object? MemoGet(long key) => _memo.TryGetValue(key, out var v)
        ? v
        : throw new ModelFileException($"pickle memo key {key} is not defined");

    private void MemoPut(long key)
    {
        if (_memo.Count >= limits.MaxPickleMemoSize && !_memo.ContainsKey(key))
        {
            throw new ModelFileException($"pickle memo is larger than the limit of {limits.MaxPickleMemoSize}");
        }

        _memo[key] = Peek();
    }

    private byte ReadByte() => Take(1)[0];

    private ReadOnlySpan<byte> Take(int n)
    {
        if (n < 0 || _pos > data.Length - n)
        {
            throw new ModelFileException($"pickle is truncated (needed {n} bytes at byte {_pos} of {data.Length})");
        }

        var span = data.Span.Slice(_pos, n);
        _pos += n;
        return span;
    }

    private int CheckLength(ulong n) => n <= (ulong)limits.MaxStringBytes
        ? (int)n
        : throw new ModelFileException($"pickle string of {n} bytes is longer than the limit of {limits.MaxStringBytes}");

    private string ReadUtf8(ulong n)
    {
        try
        {
            return new UTF8Encoding(false, true).GetString(Take(CheckLength(n)));
        }
        catch (DecoderFallbackException e)
        {
            throw new ModelFileException("pickle string is not valid UTF-8", e);
        }
    }

    private string ReadLine()
    {
        var rest = data.Span[_pos..];
        var nl = rest.IndexOf((byte)'\n');
        if (nl < 0 || nl > 1024)
        {
            throw new ModelFileException("pickle GLOBAL name is not terminated");
        }

        var s = Encoding.ASCII.GetString(rest[..nl]);
        _pos += nl + 1;
        return s;
    }
}
