using System.Net;
using System.Text;
using System.Text.Json.Nodes;

namespace Orchestrator.Agents;

/// <summary>One execution of a validated tool call.</summary>
/// <param name="ConversationId">The conversation.</param>
/// <param name="ToolCallId">The call.</param>
/// <param name="ToolName">The tool.</param>
/// <param name="Arguments">The canonical, validated argument JSON: exactly what was confirmed when confirmation is required.</param>
/// <param name="IdempotencyKey">
/// For writes, the key derived from the call's durable identity: the same on every retry and replay. Send it
/// downstream so the effect happens once. Null for reads.
/// </param>
public sealed record ToolInvocation(string ConversationId, string ToolCallId, string ToolName, string Arguments, string? IdempotencyKey)
{
    /// <summary>Leaves the arguments out: they may hold sensitive values.</summary>
    public override string ToString() => $"ToolInvocation {{ ToolCallId = {ToolCallId}, ToolName = {ToolName}, IdempotencyKey = {IdempotencyKey} }}";
}

/// <summary>Runs a tool and returns its result for the model (usually JSON text).</summary>
/// <remarks>
/// Runs at least once per call (a worker can die after the effect and before the result is recorded):
/// writes must pass <see cref="ToolInvocation.IdempotencyKey"/> downstream. Throw
/// <see cref="ToolExecutionException"/> to report a failure; the cancellation token fires at the tool's timeout.
/// </remarks>
public delegate Task<string> ToolHandler(ToolInvocation invocation, CancellationToken cancellationToken);

/// <summary>A tool failure; <see cref="IsTransient"/> failures are retried up to the tool's retry cap, others go straight back to the model.</summary>
public sealed class ToolExecutionException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ToolExecutionException(string message, bool isTransient, Exception? innerException = null)
        : base(message, innerException)
    {
        IsTransient = isTransient;
    }

    /// <summary>Creates a permanent failure.</summary>
    public ToolExecutionException()
        : this("The tool failed.", false)
    {
    }

    /// <summary>Creates a permanent failure.</summary>
    public ToolExecutionException(string message)
        : this(message, false)
    {
    }

    /// <summary>Creates a permanent failure.</summary>
    public ToolExecutionException(string message, Exception innerException)
        : this(message, false, innerException)
    {
    }

    /// <summary>Whether retrying may help (timeouts, 5xx, 429, network errors).</summary>
    public bool IsTransient { get; }
}

/// <summary>Thrown out of the ExecuteTool activity for a transient failure, so the engine's retry policy retries it.</summary>
internal sealed class TransientToolFailureException : Exception
{
    public TransientToolFailureException(string message)
        : base(message)
    {
    }

    public TransientToolFailureException()
    {
    }

    public TransientToolFailureException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>The code behind each tool, by tool name. Populate before starting the worker.</summary>
public sealed class ToolHandlers
{
    private readonly Dictionary<string, ToolHandler> _handlers = new(StringComparer.Ordinal);

    /// <summary>Sets the C# handler of a tool.</summary>
    public ToolHandlers Add(string toolName, ToolHandler handler)
    {
        ArgumentException.ThrowIfNullOrEmpty(toolName);
        ArgumentNullException.ThrowIfNull(handler);
        if (!_handlers.TryAdd(toolName, handler))
        {
            throw new ArgumentException($"Tool '{toolName}' already has a handler.", nameof(toolName));
        }

        return this;
    }

    /// <summary>
    /// Makes a tool an HTTP endpoint: the canonical arguments are POSTed as JSON with an
    /// <c>Idempotency-Key</c> header (writes). 2xx: the body is the result. 408, 409 (same key in flight), 429
    /// and 5xx, timeouts and network errors are transient; other statuses are permanent failures the model reads.
    /// </summary>
    public ToolHandlers AddHttp(string toolName, HttpClient client, Uri endpoint) => Add(toolName, Http(client, endpoint));

    /// <summary>The handler of a tool, or null.</summary>
    public ToolHandler? Find(string toolName) => _handlers.GetValueOrDefault(toolName);

    /// <summary>A handler that POSTs the arguments to <paramref name="endpoint"/> (see <see cref="AddHttp"/>).</summary>
    public static ToolHandler Http(HttpClient client, Uri endpoint)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(endpoint);
        return async (invocation, cancellationToken) =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, endpoint)
            {
                Content = new StringContent(invocation.Arguments, Encoding.UTF8, "application/json"),
            };
            if (invocation.IdempotencyKey is not null)
            {
                request.Headers.Add("Idempotency-Key", invocation.IdempotencyKey);
            }

            HttpResponseMessage response;
            try
            {
                response = await client.SendAsync(request, cancellationToken).ConfigureAwait(false);
            }
            catch (HttpRequestException ex)
            {
                throw new ToolExecutionException($"The service of tool '{invocation.ToolName}' could not be reached.", isTransient: true, ex);
            }

            using (response)
            {
                string body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
                if (response.IsSuccessStatusCode)
                {
                    return body;
                }

                int status = (int)response.StatusCode;
                bool transient = status >= 500 || response.StatusCode is HttpStatusCode.RequestTimeout or HttpStatusCode.Conflict or HttpStatusCode.TooManyRequests;
                throw new ToolExecutionException($"The service answered HTTP {status}: {Shorten(body)}", transient);
            }
        };
    }

    private static string Shorten(string body) => body.Length <= 300 ? body : body[..300];

    internal static string ErrorContent(string error, string message) =>
        new JsonObject { ["error"] = error, ["message"] = message }.ToJsonString();
}
