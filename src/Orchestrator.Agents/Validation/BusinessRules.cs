using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using FluentValidation;

namespace Orchestrator.Agents;

/// <summary>Runs a tool's FluentValidation rules against arguments that already passed the schema.</summary>
internal static class BusinessRules
{
    internal sealed record Outcome(IReadOnlyList<ToolArgumentError> Errors, string? InternalDetail, bool CouldNotRun);

    internal static Outcome Check(RegisteredTool tool, string canonicalArguments)
    {
        var definition = tool.Definition;
        if (definition.Validator is null || definition.ArgumentsType is null)
        {
            return new([], null, false);
        }

        object? arguments;
        try
        {
            arguments = JsonSerializer.Deserialize(canonicalArguments, definition.ArgumentsType, definition.ArgumentSerializerOptions);
        }
        catch (Exception ex) when (ex is JsonException or NotSupportedException or InvalidOperationException)
        {
            // The schema accepted what the type cannot hold: a tool configuration bug, not the model's.
            return new([new("", "invalid", "the arguments could not be read as this tool's arguments")], $"deserialize {definition.ArgumentsType.Name}: {ex.GetType().Name}: {ex.Message}", true);
        }

        if (arguments is null)
        {
            return new([new("", "invalid", "the arguments must be an object")], null, false);
        }

        FluentValidation.Results.ValidationResult result;
        try
        {
            result = definition.Validator.Validate(new ValidationContext<object>(arguments));
        }
        catch (Exception ex)
        {
            // One narrow place: a rule that throws refuses the call (never runs it unchecked), and the
            // model is told only that the check failed. The exception type is kept for operators.
            return new([new("", "rule", "the tool's business rules could not be checked for these arguments")], $"{ex.GetType().FullName}: {ex.Message}", true);
        }

        var errors = new List<ToolArgumentError>();
        foreach (var failure in result.Errors)
        {
            var path = MapPropertyPath(failure.PropertyName, definition.ArgumentsType, definition.ArgumentSerializerOptions);
            var message = failure.ErrorMessage;
            if (path.Length > 0 && tool.IsSensitive(SchemaErrorTranslator.StripIndexes(path)) && failure.AttemptedValue is { } attempted)
            {
                var text = Convert.ToString(attempted, System.Globalization.CultureInfo.InvariantCulture);
                if (!string.IsNullOrEmpty(text))
                {
                    message = message.Replace(text, ArgumentRedactor.Marker, StringComparison.Ordinal);
                }
            }

            var problem = path.Length == 0 || message.Contains(path, StringComparison.Ordinal) ? message : $"'{path}': {message}";
            errors.Add(new(path, "rule", problem));
        }

        return new(errors, null, false);
    }

    /// <summary>
    /// FluentValidation names C# properties (<c>OrderId</c>, <c>Items[0].Sku</c>); the model knows JSON
    /// names (<c>order_id</c>, <c>items[0].sku</c>). Walk the serializer's contract to translate.
    /// </summary>
    internal static string MapPropertyPath(string propertyPath, Type rootType, JsonSerializerOptions options)
    {
        if (string.IsNullOrEmpty(propertyPath))
        {
            return "";
        }

        var result = new List<string>();
        Type? current = rootType;
        foreach (var rawSegment in propertyPath.Split('.'))
        {
            var bracket = rawSegment.IndexOf('[', StringComparison.Ordinal);
            var member = bracket < 0 ? rawSegment : rawSegment[..bracket];
            var indexes = bracket < 0 ? "" : rawSegment[bracket..];
            JsonPropertyInfo? property = null;
            if (current is not null)
            {
                try
                {
                    property = options.GetTypeInfo(current).Properties.FirstOrDefault(p =>
                        p.AttributeProvider is System.Reflection.MemberInfo m && m.Name == member);
                }
                catch (Exception ex) when (ex is NotSupportedException or InvalidOperationException)
                {
                    property = null;
                }
            }

            var jsonName = property?.Name ?? options.PropertyNamingPolicy?.ConvertName(member) ?? member;
            result.Add(jsonName + indexes);
            current = property is null ? null : ElementType(property.PropertyType, indexes.Length > 0);
        }

        return string.Join('.', result);
    }

    private static Type? ElementType(Type type, bool indexed)
    {
        if (!indexed)
        {
            return Nullable.GetUnderlyingType(type) ?? type;
        }

        if (type.IsArray)
        {
            return type.GetElementType();
        }

        var enumerable = type.GetInterfaces().Append(type).FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IEnumerable<>));
        return enumerable?.GetGenericArguments()[0];
    }
}
