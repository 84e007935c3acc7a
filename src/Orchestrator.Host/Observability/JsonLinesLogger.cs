using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace Orchestrator.Host.Observability;

/// <summary>
/// Structured logs, one JSON object per line: timestamp, level, category, event id and name, the rendered message,
/// the correlation id, the trace and span ids of the current activity, the message's named values and every scope's.
/// Every string that goes out passes through a <see cref="SecretRedactor"/>.
/// </summary>
/// <remarks>
/// The correlation id of a line is the first of <c>CorrelationId</c>, <c>TurnId</c>, <c>InstanceId</c> and
/// <c>ConversationId</c> found in the scopes (innermost first), then in the message's own values: the agent layer's
/// turn logs carry <c>TurnId</c> and the engine's carry <c>InstanceId</c>, and <see cref="LoggerScopes.BeginTurnScope"/>
/// puts all of them on every line written inside it. Lines are written whole under a lock, so concurrent lines never
/// interleave. Thread-safe.
/// </remarks>
internal sealed class JsonLinesLoggerProvider : ILoggerProvider, ISupportExternalScope
{
    private static readonly string[] CorrelationKeys = ["CorrelationId", "TurnId", "InstanceId", "ConversationId"];

    private readonly TextWriter _writer;
    private readonly SecretRedactor _redactor;
    private readonly TimeProvider _time;
    private readonly LogLevel _minimum;
    private readonly Lock _gate = new();
    private readonly ConcurrentDictionary<string, JsonLinesLogger> _loggers = new(StringComparer.Ordinal);
    private IExternalScopeProvider _scopes = new LoggerExternalScopeProvider();

    public JsonLinesLoggerProvider(TextWriter writer, SecretRedactor redactor, TimeProvider? timeProvider = null, LogLevel minimumLevel = LogLevel.Trace)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(redactor);
        _writer = writer;
        _redactor = redactor;
        _time = timeProvider ?? TimeProvider.System;
        _minimum = minimumLevel;
    }

    public ILogger CreateLogger(string categoryName) => _loggers.GetOrAdd(categoryName, name => new JsonLinesLogger(this, name));

    public void SetScopeProvider(IExternalScopeProvider scopeProvider) => _scopes = scopeProvider;

    public void Dispose()
    {
        lock (_gate)
        {
            _writer.Flush();
        }
    }

    private void Write<TState>(string category, LogLevel level, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("timestamp", _time.GetUtcNow().UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture));
            json.WriteString("level", level.ToString());
            json.WriteString("category", category);
            if (eventId.Id != 0)
            {
                json.WriteNumber("eventId", eventId.Id);
            }

            if (eventId.Name is not null)
            {
                json.WriteString("eventName", eventId.Name);
            }

            json.WriteString("message", _redactor.Redact(formatter(state, exception)));

            var scopeValues = new List<KeyValuePair<string, object?>>();
            var scopeTexts = new List<string>();
            _scopes.ForEachScope(
                (scope, acc) =>
                {
                    if (scope is IEnumerable<KeyValuePair<string, object?>> pairs)
                    {
                        acc.Values.AddRange(pairs.Where(p => p.Key != "{OriginalFormat}"));
                    }
                    else if (scope is not null)
                    {
                        acc.Texts.Add(Convert.ToString(scope, CultureInfo.InvariantCulture) ?? string.Empty);
                    }
                },
                (Values: scopeValues, Texts: scopeTexts));
            var stateValues = state is IEnumerable<KeyValuePair<string, object?>> statePairs
                ? statePairs.Where(p => p.Key != "{OriginalFormat}").ToList()
                : [];

            string? correlation = FindCorrelation(Enumerable.Reverse(scopeValues)) ?? FindCorrelation(stateValues);
            if (correlation is not null)
            {
                json.WriteString("correlationId", _redactor.Redact(correlation));
            }

            if (Activity.Current is { } activity)
            {
                json.WriteString("traceId", activity.TraceId.ToHexString());
                json.WriteString("spanId", activity.SpanId.ToHexString());
            }

            if (stateValues.Count > 0)
            {
                json.WriteStartObject("state");
                WriteValues(json, stateValues);
                json.WriteEndObject();
            }

            if (scopeValues.Count > 0 || scopeTexts.Count > 0)
            {
                json.WriteStartObject("scope");
                WriteValues(json, scopeValues);
                if (scopeTexts.Count > 0)
                {
                    json.WriteStartArray("messages");
                    foreach (string t in scopeTexts)
                    {
                        json.WriteStringValue(_redactor.Redact(t));
                    }

                    json.WriteEndArray();
                }

                json.WriteEndObject();
            }

            if (exception is not null)
            {
                json.WriteString("exception", _redactor.Redact(exception.ToString()));
            }

            json.WriteEndObject();
        }

        string line = Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
        lock (_gate)
        {
            _writer.WriteLine(line);
        }
    }

    private static string? FindCorrelation(IEnumerable<KeyValuePair<string, object?>> values)
    {
        var list = values as IReadOnlyList<KeyValuePair<string, object?>> ?? values.ToList();
        foreach (string key in CorrelationKeys)
        {
            foreach (var (k, v) in list)
            {
                if (string.Equals(k, key, StringComparison.OrdinalIgnoreCase) && v is not null && Convert.ToString(v, CultureInfo.InvariantCulture) is { Length: > 0 } s)
                {
                    return s;
                }
            }
        }

        return null;
    }

    private void WriteValues(Utf8JsonWriter json, IEnumerable<KeyValuePair<string, object?>> values)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (key, value) in values)
        {
            if (!seen.Add(key))
            {
                continue; // an outer scope's value of the same name is shadowed by the inner one
            }

            switch (value)
            {
                case null:
                    json.WriteNull(key);
                    break;
                case bool b:
                    json.WriteBoolean(key, b);
                    break;
                case int or long or short or byte or uint or ulong or double or float or decimal:
                    // Numbers pass the redactor as text too: a card number logged as a number is still a card number.
                    string n = Convert.ToString(value, CultureInfo.InvariantCulture)!;
                    string redacted = _redactor.Redact(n);
                    if (!string.Equals(redacted, n, StringComparison.Ordinal))
                    {
                        json.WriteString(key, redacted);
                    }
                    else if (value is double or float)
                    {
                        json.WriteNumber(key, Convert.ToDouble(value, CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        json.WriteNumber(key, Convert.ToDecimal(value, CultureInfo.InvariantCulture));
                    }

                    break;
                default:
                    json.WriteString(key, _redactor.Redact(Convert.ToString(value, CultureInfo.InvariantCulture) ?? string.Empty));
                    break;
            }
        }
    }

    private sealed class JsonLinesLogger(JsonLinesLoggerProvider owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => owner._scopes.Push(state);

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None && logLevel >= owner._minimum;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                owner.Write(category, logLevel, eventId, state, exception, formatter);
            }
        }
    }
}

/// <summary>Scopes that put a turn's correlation id on every line written inside them.</summary>
internal static class LoggerScopes
{
    /// <summary>
    /// Begins a scope carrying <c>CorrelationId</c> (the turn's instance id, or the conversation id when no turn runs yet),
    /// <c>ConversationId</c> and <c>InstanceId</c>: every line logged inside it, by any logger of the factory, carries them.
    /// </summary>
    public static IDisposable? BeginTurnScope(this ILogger logger, string conversationId, string? instanceId)
    {
        ArgumentNullException.ThrowIfNull(logger);
        return logger.BeginScope(new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["CorrelationId"] = instanceId ?? conversationId,
            ["ConversationId"] = conversationId,
            ["InstanceId"] = instanceId,
        });
    }
}
