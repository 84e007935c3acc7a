using System.Collections.Concurrent;
using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Orchestrator.Agents;
using Orchestrator.Agents.Models;
using Orchestrator.Durable;
using Orchestrator.Durable.Client;

namespace Orchestrator.Bench;

/// <summary>
/// The scripted model of the durable side: an in-process <see cref="IChatModel"/> (no HTTP, no SDK), so the turn's cost
/// is the engine's and the agent layer's, measured against a baseline whose chat client plays the same script in process.
/// </summary>
internal sealed class ScriptedTurnModel(TimeSpan latency, TurnCounters counters) : IChatModel
{
    public async Task<ModelReply> CompleteAsync(ModelRequest request, CancellationToken cancellationToken)
    {
        counters.ModelCall();
        await TurnScript.SimulateLatencyAsync(latency, cancellationToken).ConfigureAwait(false);
        var results = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (ModelMessage m in request.Messages)
        {
            if (m.Role == ModelRole.Tool && !results.TryAdd(m.ToolCallId ?? string.Empty, m.Content ?? string.Empty))
            {
                throw new InvalidOperationException($"call '{m.ToolCallId}' has more than one result in the conversation.");
            }
        }

        ScriptedReply reply = TurnScript.Reply(results);
        return new ModelReply
        {
            Text = reply.Text,
            ToolCalls = [.. reply.Calls.Select(c => new ModelToolCall(c.Id, c.Name, c.Arguments))],
            FinishReason = reply.Calls.Count > 0 ? "tool_calls" : "stop",
            Model = "scripted",
        };
    }
}

/// <summary>
/// Approves each turn's confirmation as soon as its card is committed. The turn logs <c>ConfirmationPending</c> (event
/// id 4003, category <c>Orchestrator.Agents.Turn</c>) while its episode runs, and the worker logs <c>EpisodeExecuted</c>
/// (event id 1100, category <c>Orchestrator.Durable.Worker</c>, debug) once that episode's checkpoint, card included, is
/// committed; the second line for a turn that logged the first is the bench's signal, so no turn's status is polled
/// while it runs. <see cref="TurnConfirmations.DecideAllAsync"/> then accepts the decision bound to the argument hash
/// the card shows; should it not find the card, it is retried (1 ms, doubling, bounded).
/// </summary>
internal sealed class ConfirmationApprover : ILoggerProvider
{
    private const int ConfirmationPendingEventId = 4003;
    private const int EpisodeExecutedEventId = 1100;

    /// <summary>The worker's category; its debug lines must reach this provider (see <see cref="AddTo"/>).</summary>
    private const string WorkerCategory = "Orchestrator.Durable.Worker";
    private static readonly TimeSpan CardTimeout = TimeSpan.FromSeconds(30);
    private readonly Channel<string> _signals = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true });
    private readonly ConcurrentDictionary<string, bool> _signalled = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, bool> _awaitingCommit = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<double> _latenciesMs = new();
    private readonly TaskCompletionSource<string> _failure = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _decideCalls;

    /// <summary>Completes (with the reason) when an approval could not be given; the run must then fail.</summary>
    public Task<string> Failure => _failure.Task;

    public int Approvals => _latenciesMs.Count;

    /// <summary><see cref="TurnConfirmations.DecideAllAsync"/> calls made, including those made before the card was committed.</summary>
    public int DecideCalls => Volatile.Read(ref _decideCalls);

    /// <summary>From the log line to the accepted decision, per approval, in milliseconds.</summary>
    public IReadOnlyCollection<double> LatenciesMs => _latenciesMs;

    public ILogger CreateLogger(string categoryName) => categoryName switch
    {
        "Orchestrator.Agents.Turn" => new SignalLogger(ConfirmationPendingEventId, LogLevel.Information, "TurnId", OnPending),
        WorkerCategory => new SignalLogger(EpisodeExecutedEventId, LogLevel.Debug, "InstanceId", OnCommitted),
        _ => NullLogger.Instance,
    };

    /// <summary>Adds the approver to <paramref name="logging"/>, with the worker's debug lines let through to it alone.</summary>
    public ILoggingBuilder AddTo(ILoggingBuilder logging) =>
        logging.AddProvider(this).AddFilter<ConfirmationApprover>(WorkerCategory, LogLevel.Debug);

    /// <summary>Reads the signals and approves each turn once, until <paramref name="cancellationToken"/> fires.</summary>
    public async Task RunAsync(DurableTaskClient client, CancellationToken cancellationToken)
    {
        var running = new List<Task>();
        try
        {
            await foreach (string instanceId in _signals.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                // An episode that is run again (its first checkpoint lost) logs the line again: one approval per turn.
                if (!_signalled.TryAdd(instanceId, true))
                {
                    continue;
                }

                running.Add(ApproveAsync(client, instanceId, cancellationToken));
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }

        await Task.WhenAll(running).ConfigureAwait(false);
    }

    public void Dispose() => _signals.Writer.TryComplete();

    private async Task ApproveAsync(DurableTaskClient client, string instanceId, CancellationToken cancellationToken)
    {
        long start = Stopwatch.GetTimestamp();
        TimeSpan delay = TimeSpan.FromMilliseconds(1);
        try
        {
            while (true)
            {
                Interlocked.Increment(ref _decideCalls);
                var results = await TurnConfirmations.DecideAllAsync(client, instanceId, approve: true, "bench", TimeProvider.System, cancellationToken).ConfigureAwait(false);
                if (results.Any(r => r.Value == ConfirmationDecisionResult.Accepted))
                {
                    _latenciesMs.Enqueue(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                    return;
                }

                if (results.FirstOrDefault(r => r.Value != ConfirmationDecisionResult.NotPending) is { Key: not null } refused)
                {
                    _failure.TrySetResult($"turn {instanceId}: the approval of call {refused.Key} was refused ({refused.Value}).");
                    return;
                }

                if (Stopwatch.GetElapsedTime(start) > CardTimeout)
                {
                    _failure.TrySetResult($"turn {instanceId} logged a pending confirmation, but no card appeared in its status within {CardTimeout.TotalSeconds:0} s.");
                    return;
                }

                // The line was logged before the episode's checkpoint committed the card: try again shortly.
                await Task.Delay(delay, TimeProvider.System, cancellationToken).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromMilliseconds(20).Ticks));
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>A turn's card is pending: approve it once the episode that published it has committed.</summary>
    private void OnPending(string turnId) => _awaitingCommit.TryAdd(turnId, true);

    private void OnCommitted(string instanceId)
    {
        if (_awaitingCommit.TryRemove(instanceId, out _))
        {
            _signals.Writer.TryWrite(instanceId);
        }
    }

    /// <summary>Hands the id field of each <paramref name="signalEventId"/> line to <paramref name="onSignal"/>.</summary>
    private sealed class SignalLogger(int signalEventId, LogLevel minLevel, string idField, Action<string> onSignal) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= minLevel;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (eventId.Id != signalEventId || state is not IReadOnlyList<KeyValuePair<string, object?>> fields)
            {
                return;
            }

            foreach (var (key, value) in fields)
            {
                if (key == idField && value is string id)
                {
                    onSignal(id);
                    return;
                }
            }
        }
    }
}

/// <summary>The durable side's agent: the script's tools as a checked tool set, their handlers, the scripted model.</summary>
internal static class DurableTurnAgent
{
    public static DurableTaskRegistry CreateRegistry(TimeSpan modelLatency, TurnCounters counters, ILoggerFactory loggerFactory)
    {
        ToolRegistry tools = new ToolRegistryBuilder()
            .AddRange(TurnScript.Tools.Select(t => ToolDefinition.FromJsonSchema(t.Name, t.Description, t.Schema) with
            {
                Effect = t.Write ? ToolEffect.Write : ToolEffect.Read,
                RequiresConfirmation = t.Write,

                // The refund waits for the reads of its order (the planner's "writes after reads of the same resource").
                ResourceKeyArguments = t.Schema.Contains("\"order_id\"", StringComparison.Ordinal) ? ["order_id"] : [],
                SummaryTemplate = t.Write ? "Refund ${amount:0.00} for order {order_id}" : null,
            }))
            .Build();
        var handlers = new ToolHandlers();
        foreach (var tool in TurnScript.Tools)
        {
            handlers.Add(tool.Name, (invocation, _) => Task.FromResult(TurnScript.Execute(invocation.ToolName, invocation.Arguments, counters)));
        }

        return new DurableTaskRegistry().AddAgentTurn(tools, handlers, new ScriptedTurnModel(modelLatency, counters), TimeProvider.System, loggerFactory);
    }

    public static TurnInput Input(string conversationId) =>
        new(conversationId, [ModelMessage.System(TurnScript.SystemPrompt), ModelMessage.User(TurnScript.UserMessage)]);
}
