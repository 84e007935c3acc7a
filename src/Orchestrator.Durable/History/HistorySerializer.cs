using System.Text.Json;
using System.Text.Json.Serialization;

namespace Orchestrator.Durable.History;

/// <summary>
/// The one place that defines how history events and task messages are written to storage.
/// </summary>
// WARNING: changing these options changes the persisted format of every backend.
public static class HistorySerializer
{
    private static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new JsonStringEnumConverter() },
    };

    /// <summary>Serializes one history event.</summary>
    public static string Serialize(HistoryEvent e) => JsonSerializer.Serialize(e, Options);

    /// <summary>Deserializes one history event.</summary>
    /// <exception cref="JsonException">Not a history event.</exception>
    public static HistoryEvent DeserializeEvent(string json) =>
        JsonSerializer.Deserialize<HistoryEvent>(json, Options) ?? throw new JsonException("A history event was null.");

    /// <summary>Serializes a history as a JSON array.</summary>
    public static string SerializeHistory(IEnumerable<HistoryEvent> events) => JsonSerializer.Serialize(events.ToList(), Options);

    /// <summary>Deserializes a history from a JSON array.</summary>
    public static IReadOnlyList<HistoryEvent> DeserializeHistory(string json) =>
        JsonSerializer.Deserialize<List<HistoryEvent>>(json, Options) ?? throw new JsonException("A history was null.");

    /// <summary>Serializes a task message.</summary>
    public static string Serialize(TaskMessage m) => JsonSerializer.Serialize(m, Options);

    /// <summary>Deserializes a task message.</summary>
    /// <exception cref="JsonException">Not a task message.</exception>
    public static TaskMessage DeserializeMessage(string json) =>
        JsonSerializer.Deserialize<TaskMessage>(json, Options) ?? throw new JsonException("A task message was null.");

    /// <summary>Serializes failure details.</summary>
    public static string Serialize(TaskFailureDetails f) => JsonSerializer.Serialize(f, Options);

    /// <summary>Deserializes failure details.</summary>
    public static TaskFailureDetails? DeserializeFailure(string? json) =>
        json is null ? null : JsonSerializer.Deserialize<TaskFailureDetails>(json, Options);
}
