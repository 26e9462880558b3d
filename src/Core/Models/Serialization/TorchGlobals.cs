namespace WebDefense.Core.Models.Serialization;

/// <summary>
/// The GLOBAL allowlist of the restricted unpickler for <c>torch.save</c> files. Every allowed name maps to a C#
/// handler; anything else is rejected with a message naming it.
/// </summary>
internal sealed class TorchGlobals(ModelReadLimits limits)
{
    private int _rebuilt;

    public object Resolve(string module, string name)
    {
        var qualified = $"{module}.{name}";
        switch (qualified)
        {
            case "collections.OrderedDict":
                return new PickleCallable(qualified, MakeOrderedDict);
            case "torch._utils._rebuild_tensor_v2":
                return new PickleCallable(qualified, args => RebuildTensor(args, 6, 7));
            case "torch._utils._rebuild_tensor":
                return new PickleCallable(qualified, args => RebuildTensor(args, 4, 4));
            case "torch._utils._rebuild_parameter":
            case "torch._utils._rebuild_parameter_with_state":
                return new PickleCallable(qualified, args => args.Length >= 1 && args[0] is TensorRef t
                    ? t
                    : throw new ModelFileException($"{qualified} without a tensor argument"));
            case "torch.Size":
                return new PickleCallable(qualified, args => args is [object?[] dims] ? dims : Array.Empty<object?>());
            case "torch.device":
                return new PickleCallable(qualified, args => string.Join(":", args));
        }

        if (NumpyValues.Resolve(qualified) is { } numpy)
        {
            return numpy;
        }

        if (module == "torch" && TensorDTypes.TryFromStorageName(name, out var dtype))
        {
            return new StorageTypeToken(name, dtype);
        }

        if (module.StartsWith("__torch__", StringComparison.Ordinal))
        {
            throw new ModelFileException(
                $"pickle GLOBAL '{qualified}' is a TorchScript class: this is a TorchScript archive; upload it as TorchScript");
        }

        var hint = module.StartsWith("numpy", StringComparison.Ordinal) || module == "_codecs"
            ? " (only numpy arrays, dtypes and scalars are read; save only the model's state_dict())"
            : module.Split('.')[0] is "os" or "posix" or "nt" or "sys" or "builtins" or "subprocess" or "__builtin__"
                ? " (only tensors and plain containers are read)"
                : " (only tensors and plain containers are read; if the file pickles a whole model, save model.state_dict() instead)";
        throw new ModelFileException($"pickle GLOBAL '{qualified}' is not allowed{hint}");
    }

    private static object MakeOrderedDict(object?[] args)
    {
        var d = new PickleDict();
        if (args is [List<object?> pairs])
        {
            foreach (var p in pairs)
            {
                if (p is not object?[] { Length: 2 } kv)
                {
                    throw new ModelFileException("OrderedDict built from something other than (key, value) pairs");
                }

                d.Set(kv[0], kv[1]);
            }
        }
        else if (args.Length != 0)
        {
            throw new ModelFileException("OrderedDict called with unexpected arguments");
        }

        return d;
    }

    /// <summary>
    /// <c>_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])</c> → a bounds-checked
    /// <see cref="TensorRef"/>; <c>_rebuild_tensor(storage, offset, size, stride)</c> likewise.
    /// </summary>
    private TensorRef RebuildTensor(object?[] args, int minArgs, int maxArgs)
    {
        if (args.Length < minArgs || args.Length > maxArgs)
        {
            throw new ModelFileException($"_rebuild_tensor called with {args.Length} arguments");
        }

        if (args[0] is not StorageHandle storage || args[1] is not long offset || args[2] is not object?[] sizeT || args[3] is not object?[] strideT)
        {
            throw new ModelFileException("_rebuild_tensor arguments are not (storage, int offset, size tuple, stride tuple)");
        }

        if (++_rebuilt > limits.MaxTensorCount)
        {
            throw new ModelFileException($"pickle builds more than {limits.MaxTensorCount} tensors");
        }

        if (sizeT.Length > limits.MaxTensorRank)
        {
            throw new ModelFileException($"tensor from storage '{storage.Key}' has {sizeT.Length} dimensions, more than {limits.MaxTensorRank}");
        }

        return new TensorRef(storage, offset, Longs(sizeT, "size"), Longs(strideT, "stride"));
    }

    private static long[] Longs(object?[] t, string what) => t.Select(x => x is long v
        ? v
        : throw new ModelFileException($"tensor {what} contains a {PickleReader.Describe(x)}, not an int")).ToArray();
}
