using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Schema;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace Orchestrator.Agents;

/// <summary>
/// How C# argument types map to the JSON the model sends, and how their JSON Schema is generated.
/// </summary>
/// <remarks>
/// The schema comes from System.Text.Json's schema exporter with these options, so the schema and
/// deserialization can never disagree. Properties become snake_case; a constructor parameter
/// without a default value or a <c>required</c> member is a required argument; unknown arguments
/// are refused (<c>additionalProperties: false</c>); enums are strings. These attributes add
/// constraints: <see cref="DescriptionAttribute"/> (description), <see cref="RegularExpressionAttribute"/>
/// (pattern), <see cref="RangeAttribute"/> (minimum/maximum), <see cref="StringLengthAttribute"/>,
/// <see cref="MinLengthAttribute"/> and <see cref="MaxLengthAttribute"/>. On a positional record
/// parameter, place them on the parameter or with <c>[property: ...]</c>.
/// </remarks>
public static class ToolArgumentSerializer
{
    /// <summary>The default options: snake_case names, string enums, nullable annotations and required constructor parameters respected, unknown members refused. Read-only.</summary>
    public static JsonSerializerOptions DefaultOptions { get; } = CreateDefaultOptions();

    private static JsonSerializerOptions CreateDefaultOptions()
    {
        var options = new JsonSerializerOptions
        {
            PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
            RespectNullableAnnotations = true,
            RespectRequiredConstructorParameters = true,
            UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
            NumberHandling = JsonNumberHandling.Strict,
            TypeInfoResolver = new DefaultJsonTypeInfoResolver(),
        };
        options.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower, allowIntegerValues: false));
        options.MakeReadOnly();
        return options;
    }

    internal static string GenerateSchema(Type argumentsType, JsonSerializerOptions options)
    {
        var exporterOptions = new JsonSchemaExporterOptions
        {
            TreatNullObliviousAsNonNullable = true,
            TransformSchemaNode = AddAttributeConstraints,
        };
        var node = options.GetJsonSchemaAsNode(argumentsType, exporterOptions);
        return node.ToJsonString();
    }

    private static JsonNode AddAttributeConstraints(JsonSchemaExporterContext context, JsonNode schema)
    {
        if (schema is not JsonObject obj)
        {
            return schema;
        }

        var providers = new List<ICustomAttributeProvider>();
        if (context.PropertyInfo is { } property)
        {
            if (property.AttributeProvider is { } p)
            {
                providers.Add(p);
            }

            if (property.AssociatedParameter?.AttributeProvider is { } a)
            {
                providers.Add(a);
            }
        }
        else if (context.Path.IsEmpty)
        {
            providers.Add(context.TypeInfo.Type);
        }

        foreach (var attribute in providers.SelectMany(p => p.GetCustomAttributes(inherit: true)))
        {
            switch (attribute)
            {
                case DescriptionAttribute d:
                    obj["description"] = d.Description;
                    break;
                case RegularExpressionAttribute r:
                    obj["pattern"] = r.Pattern;
                    break;
                case RangeAttribute r:
                    obj["minimum"] = JsonValue.Create(Convert.ToDecimal(r.Minimum, CultureInfo.InvariantCulture));
                    obj["maximum"] = JsonValue.Create(Convert.ToDecimal(r.Maximum, CultureInfo.InvariantCulture));
                    break;
                case StringLengthAttribute s:
                    if (s.MinimumLength > 0)
                    {
                        obj["minLength"] = s.MinimumLength;
                    }

                    obj["maxLength"] = s.MaximumLength;
                    break;
                case MinLengthAttribute m:
                    obj[IsArraySchema(obj) ? "minItems" : "minLength"] = m.Length;
                    break;
                case MaxLengthAttribute m:
                    obj[IsArraySchema(obj) ? "maxItems" : "maxLength"] = m.Length;
                    break;
            }
        }

        return obj;
    }

    private static bool IsArraySchema(JsonObject schema) =>
        schema["type"] switch
        {
            JsonValue v => v.GetValueKind() == JsonValueKind.String && v.GetValue<string>() == "array",
            JsonArray a => a.Any(t => t is JsonValue v && v.GetValueKind() == JsonValueKind.String && v.GetValue<string>() == "array"),
            _ => false,
        };
}
