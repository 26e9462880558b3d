namespace WebDefense.Core.Data.Triggers;

/// <summary>A trigger description is malformed or does not fit the images; the message is safe to show to the user.</summary>
public sealed class InvalidTriggerException(string message, Exception? inner = null) : ArgumentException(message, inner);
