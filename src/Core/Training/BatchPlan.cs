namespace WebDefense.Core.Training;

/// <summary>Deterministic mini-batch index lists for one epoch (shuffled with the caller's Random).</summary>
public static class BatchPlan
{
    public static IReadOnlyList<long[]> Epoch(int count, int batchSize, bool shuffle, bool dropLast, Random random)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        var order = Enumerable.Range(0, count).Select(i => (long)i).ToArray();
        if (shuffle)
        {
            random.Shuffle(order);
        }

        var batches = new List<long[]>();
        for (var start = 0; start < count; start += batchSize)
        {
            var length = Math.Min(batchSize, count - start);
            if (dropLast && length < batchSize && start > 0)
            {
                break;
            }

            batches.Add(order.AsSpan(start, length).ToArray());
        }

        return batches;
    }
}
