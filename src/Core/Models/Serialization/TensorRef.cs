using static TorchSharp.torch;

namespace WebDefense.Core.Models.Serialization;

/// <summary>
/// A storage declared by a pickle persistent id. Its bytes are read from the archive only when a tensor that is
/// kept needs them, and only once, so tensors sharing a storage share one read.
/// </summary>
internal sealed class StorageHandle(string key, ScalarType dtype, long numel, Func<byte[]> readBytes)
{
    private Tensor? _data;

    public string Key => key;
    public ScalarType DType => dtype;
    public long Numel => numel;

    /// <summary>The storage as a 1-D tensor (created in the caller's dispose scope on first use).</summary>
    public Tensor Data => _data ??= TensorDTypes.FromBytes(readBytes(), dtype, [numel]);
}

/// <summary>
/// The result of <c>_rebuild_tensor_v2</c>: a bounds-checked strided view of a storage. It becomes a tensor only
/// through <see cref="Materialize"/>, so tensors the caller does not keep (optimizer state …) are never allocated.
/// </summary>
internal sealed class TensorRef
{
    public TensorRef(StorageHandle storage, long offset, long[] size, long[] stride)
    {
        if (size.Length != stride.Length)
        {
            throw new ModelFileException($"tensor from storage '{storage.Key}' has {size.Length} sizes and {stride.Length} strides");
        }

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

            if (last >= storage.Numel)
            {
                throw new ModelFileException(
                    $"tensor view (offset {offset}, size [{string.Join(", ", size)}], stride [{string.Join(", ", stride)}]) " +
                    $"reaches element {last} of storage '{storage.Key}', which has {storage.Numel} elements");
            }
        }
        else if (offset > storage.Numel)
        {
            throw new ModelFileException($"empty tensor offset {offset} is outside storage '{storage.Key}' ({storage.Numel} elements)");
        }

        Storage = storage;
        Offset = offset;
        Size = size;
        Stride = stride;
        Numel = numel;
    }

    public StorageHandle Storage { get; }
    public long Offset { get; }
    public long[] Size { get; }
    public long[] Stride { get; }
    public long Numel { get; }
    public long ByteCount => Numel * TensorDTypes.ElementSize(Storage.DType);

    /// <summary>A new contiguous tensor with the view's values (views, slices and transposes come out exact).</summary>
    public Tensor Materialize()
    {
        var result = empty(Size, dtype: Storage.DType);
        if (Numel > 0)
        {
            using var view = Storage.Data.as_strided(Size, Stride, Offset);
            result.copy_(view);
        }

        return result;
    }
}
