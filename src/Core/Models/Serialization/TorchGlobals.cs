using static TorchSharp.torch;

namespace WebDefense.Core.Models.Serialization;

/// <summary>
/// The GLOBAL allowlist of the restricted unpickler for <c>torch.save</c> files. Every allowed name maps to a C#
/// handler; anything else is rejected with a message naming it.
/// </summary>
internal static class TorchGlobals
{
    public static object Resolve(string module, string name)
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
                return new PickleCallable(qualified, args => args.Length >= 1 && args[0] is Tensor t
                    ? t
                    : throw new ModelFileException($"{qualified} without a tensor argument"));
            case "torch.Size":
                return new PickleCallable(qualified, args => args is [object?[] dims] ? dims : Array.Empty<object?>());
            case "torch.device":
                return new PickleCallable(qualified, args => string.Join(":", args));
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
            ? " (numpy values are not supported; save only the model's state_dict())"
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
    /// <c>_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])</c>: checks that the view
    /// lies inside the storage, then copies it out as a new contiguous tensor, so views, slices and transposes of
    /// shared storages are exact.
    /// </summary>
    private static Tensor RebuildTensor(object?[] args, int minArgs, int maxArgs)
    {
        if (args.Length < minArgs || args.Length > maxArgs)
        {
            throw new ModelFileException($"_rebuild_tensor called with {args.Length} arguments");
        }

        if (args[0] is not StorageHandle storage || args[1] is not long offset || args[2] is not object?[] sizeT || args[3] is not object?[] strideT)
        {
            throw new ModelFileException("_rebuild_tensor arguments are not (storage, int offset, size tuple, stride tuple)");
        }

        var size = Longs(sizeT, "size");
        var stride = Longs(strideT, "stride");
        if (size.Length != stride.Length || size.Length > 64)
        {
            throw new ModelFileException($"tensor from storage '{storage.Key}' has {size.Length} sizes and {stride.Length} strides");
        }

        var storageNumel = storage.Tensor.numel();
        var numel = TensorDTypes.CheckedNumel(size, $"tensor from storage '{storage.Key}'");
        if (offset < 0 || stride.Any(s => s < 0))
        {
            throw new ModelFileException($"tensor from storage '{storage.Key}' has a negative offset or stride");
        }

        if (numel > 0)
        {
            long last;
            try
            {
                last = offset;
                for (var i = 0; i < size.Length; i++)
                {
                    last = checked(last + (size[i] - 1) * stride[i]);
                }
            }
            catch (OverflowException)
            {
                last = long.MaxValue;
            }

            if (last >= storageNumel)
            {
                throw new ModelFileException(
                    $"tensor view (offset {offset}, size [{string.Join(", ", size)}], stride [{string.Join(", ", stride)}]) " +
                    $"reaches element {last} of storage '{storage.Key}', which has {storageNumel} elements");
            }
        }
        else if (offset > storageNumel)
        {
            throw new ModelFileException($"empty tensor offset {offset} is outside storage '{storage.Key}' ({storageNumel} elements)");
        }

        var result = empty(size, dtype: storage.Tensor.dtype);
        if (numel > 0)
        {
            using var view = storage.Tensor.as_strided(size, stride, offset);
            result.copy_(view);
        }

        return result;
    }

    private static long[] Longs(object?[] t, string what) => t.Select(x => x is long v
        ? v
        : throw new ModelFileException($"tensor {what} contains a {PickleReader.Describe(x)}, not an int")).ToArray();
}
