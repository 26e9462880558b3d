namespace WebDefense.Core.Data;

/// <summary>
/// Reads an uploaded dataset, choosing the format by content (then extension):
/// <list type="bullet">
/// <item><c>.npz</c> (zip whose entries are all <c>.npy</c>) → <see cref="NumpyReader"/>; a bare <c>.npy</c> is refused.</item>
/// <item>zip of <c>*.bin</c> files → <see cref="Cifar10BinaryReader"/>.</item>
/// <item>zip of exactly two IDX files (images 0x803 and labels 0x801, optionally gzipped) → <see cref="IdxReader"/>.</item>
/// <item>any other zip → <see cref="ImageFolderZipReader"/> (class folders of PNG/JPEG).</item>
/// <item>a tar archive, or a gzipped one (<c>.tar</c>, <c>.tar.gz</c>, <c>.tgz</c>) → read as the zip of the same files.</item>
/// <item>a file whose size is a multiple of 3,073 bytes, or named <c>*.bin</c> → <see cref="Cifar10BinaryReader"/>.</item>
/// </list>
/// </summary>
public static class DatasetReader
{
    public static LabelledDataset Read(string path, DatasetReadOptions? options = null)
    {
        options ??= DatasetReadOptions.Default;
        var info = new FileInfo(path);
        if (info.Exists && info.Length > options.Limits.MaxUploadBytes)
        {
            throw new DatasetFileException($"{info.Name} is larger than the upload limit of {DatasetReadLimits.Bytes(options.Limits.MaxUploadBytes)}");
        }

        using var s = File.OpenRead(path);
        return Read(s, info.Name, options);
    }

    public static LabelledDataset Read(Stream stream, string fileName, DatasetReadOptions? options = null)
    {
        options ??= DatasetReadOptions.Default;
        var bytes = SafeArchive.ReadUpload(stream, options.Limits, fileName);
        return Read(bytes, fileName, options);
    }

    public static LabelledDataset Read(byte[] bytes, string fileName, DatasetReadOptions? options = null)
    {
        options ??= DatasetReadOptions.Default;
        if (SafeArchive.IsGzip(bytes) && SafeArchive.MaybeGunzip(bytes, options.Limits, fileName) is var inner && SafeArchive.IsTar(inner))
        {
            return Read(SafeArchive.TarToZip(inner, options.Limits, fileName), fileName, options);
        }

        if (SafeArchive.IsTar(bytes))
        {
            return Read(SafeArchive.TarToZip(bytes, options.Limits, fileName), fileName, options);
        }

        if (NpyArray.HasMagic(bytes))
        {
            return new LabelledDataset(NumpyReader.Read(bytes, fileName, options));
        }

        if (SafeArchive.IsZip(bytes))
        {
            string[] names;
            using (var zip = SafeArchive.OpenZip(bytes, options.Limits, fileName))
            {
                names = zip.Entries.Where(e => !e.FullName.EndsWith('/') && !ImageFolderZipReader.IsJunk(e.FullName)).Select(e => e.FullName).ToArray();
                if (names.Length > 0 && names.All(n => n.EndsWith(".npy", StringComparison.Ordinal)))
                {
                    return new LabelledDataset(NumpyReader.Read(bytes, fileName, options));
                }

                if (names.Length > 0 && names.All(n => n.EndsWith(".bin", StringComparison.OrdinalIgnoreCase)))
                {
                    return new LabelledDataset(Cifar10BinaryReader.ReadZip(bytes, options, fileName));
                }

                if (names.Length == 2 && names.All(n => n.Contains("idx", StringComparison.OrdinalIgnoreCase)))
                {
                    long used = 0;
                    var files = zip.Entries.Where(e => names.Contains(e.FullName))
                        .Select(e => (e.FullName, Data: SafeArchive.MaybeGunzip(SafeArchive.ReadEntry(e, options.Limits, ref used, fileName), options.Limits, e.FullName)))
                        .ToList();
                    var img = files.FirstOrDefault(f => f.Data.Length >= 4 && f.Data[2] == 8 && f.Data[3] == 3);
                    var lab = files.FirstOrDefault(f => f.Data.Length >= 4 && f.Data[2] == 8 && f.Data[3] == 1);
                    if (img.Data is null || lab.Data is null)
                    {
                        throw new DatasetFileException($"{fileName} holds two IDX-named files but not one images (0x803) and one labels (0x801) file");
                    }

                    return new LabelledDataset(IdxReader.Read(img.Data, lab.Data, options, img.FullName, lab.FullName));
                }
            }

            return ImageFolderZipReader.Read(bytes, fileName, options);
        }

        if (fileName.EndsWith(".bin", StringComparison.OrdinalIgnoreCase) || (bytes.Length > 0 && bytes.Length % Cifar10BinaryReader.RecordSize == 0))
        {
            return new LabelledDataset(Cifar10BinaryReader.Read([(fileName, bytes)], options));
        }

        throw new DatasetFileException(
            $"{fileName} is in no recognised format; accepted: .npz (arrays x and y), a zip, .tar or .tar.gz of class folders of PNG/JPEG images, CIFAR-10 .bin batches (or a zip of them), a zip of IDX images + labels");
    }
}
