namespace WebDefense.Core.Data;

/// <summary>
/// A data file was rejected: hostile (path traversal, zip bomb, too many files or pixels), truncated,
/// malformed, or inconsistent (labels out of range, shapes that do not match the model). The message says
/// what was found and is safe to show to the uploader.
/// </summary>
public sealed class DatasetFileException(string message, Exception? inner = null) : Exception(message, inner);
