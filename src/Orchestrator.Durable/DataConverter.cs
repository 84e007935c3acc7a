using System.Text.Json;
using System.Text.Json.Serialization;

namespace Orchestrator.Durable;

/// <summary>
/// Converts inputs, outputs and event payloads to and from the JSON strings stored in history.
/// </summary>
public class DataConverter
{
    /// <summary>The default converter: System.Text.Json with web defaults and string enums.</summary>
    public static DataConverter Default { get; } = new(CreateDefaultOptions());

    private readonly JsonSerializerOptions options;

    /// <summary>Creates a converter over the given serializer options.</summary>
    public DataConverter(JsonSerializerOptions options)
    {
        this.options = options;
    }

    /// <summary>Serializes a value; null stays null.</summary>
    public virtual string? Serialize(object? value) =>
        value is null ? null : JsonSerializer.Serialize(value, value.GetType(), this.options);

    /// <summary>Deserializes a value; null or empty gives the type's default.</summary>
    /// <exception cref="JsonException">The data is not valid JSON for <paramref name="type"/>.</exception>
    public virtual object? Deserialize(string? data, Type type)
    {
        if (string.IsNullOrEmpty(data))
        {
            return type.IsValueType ? Activator.CreateInstance(type) : null;
        }

        return JsonSerializer.Deserialize(data, type, this.options);
    }

    /// <summary>Deserializes a value.</summary>
    public T? Deserialize<T>(string? data) => (T?)this.Deserialize(data, typeof(T));

    internal static JsonSerializerOptions CreateDefaultOptions()
    {
        var o = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        o.Converters.Add(new JsonStringEnumConverter());
        return o;
    }
}
