namespace WebDefense.Core.Models;

/// <summary>
/// A model file was rejected: hostile, malformed, of an unsupported kind, or inconsistent with the declared
/// architecture. The message says what was found and is safe to show to the uploader.
/// </summary>
public sealed class ModelFileException(string message, Exception? inner = null) : Exception(message, inner);
