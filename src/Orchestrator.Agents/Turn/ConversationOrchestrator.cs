using System.Globalization;
using Orchestrator.Agents.Models;
using Orchestrator.Durable;

namespace Orchestrator.Agents;

/// <summary>The state a conversation carries from turn to turn.</summary>
/// <param name="ConversationId">The conversation; also the instance id of its conversation orchestration.</param>
/// <param name="Messages">The conversation so far (starts with the system prompt, if any).</param>
// WARNING: persisted as orchestration input (each ContinueAsNew).
public sealed record ConversationState(string ConversationId, IReadOnlyList<ModelMessage> Messages)
{
    /// <summary>Writes done so far, for semantic-repeat detection.</summary>
    public IReadOnlyList<CompletedWrite> CompletedWrites { get; init; } = [];

    /// <summary>The limits of each turn; defaults when null.</summary>
    public TurnOptions? TurnOptions { get; init; }

    /// <summary>Turns run so far.</summary>
    public int Turns { get; init; }

    /// <summary>How the last turn ended, null before the first.</summary>
    public TurnOutcome? LastOutcome { get; init; }

    /// <summary>The last turn's answer or terminal message.</summary>
    public string? LastMessage { get; init; }
}

/// <summary>A conversation's custom status.</summary>
/// <param name="Turns">Turns finished.</param>
/// <param name="CurrentTurnInstanceId">The turn running now (decide its confirmations there), or null when idle.</param>
/// <param name="LastOutcome">How the last turn ended.</param>
/// <param name="LastMessage">The last answer or terminal message.</param>
public sealed record ConversationStatus(int Turns, string? CurrentTurnInstanceId, TurnOutcome? LastOutcome, string? LastMessage);

/// <summary>
/// A conversation as a long-running orchestration: one turn at a time. Each user message is an external event
/// (<see cref="ConversationOrchestrator.UserMessageEvent"/>); a message that arrives while a turn runs stays
/// buffered by the engine and starts the next turn, so nothing is lost and no two turns run concurrently.
/// Each turn is a sub-orchestration with the deterministic instance id <c>{conversation}:turn:{n}</c>; history is
/// bounded by ContinueAsNew after every turn.
/// </summary>
internal sealed class ConversationOrchestrator : TaskOrchestrator<ConversationState, ConversationState>
{
    internal const string UserMessageEvent = "user_message";

    public override async Task<ConversationState> RunAsync(TaskOrchestrationContext context, ConversationState input)
    {
        context.SetCustomStatus(new ConversationStatus(input.Turns, null, input.LastOutcome, input.LastMessage));
        string text = await context.WaitForExternalEvent<string>(UserMessageEvent);
        string turnId = TurnInstanceId(input.ConversationId, input.Turns + 1);
        context.SetCustomStatus(new ConversationStatus(input.Turns, turnId, input.LastOutcome, input.LastMessage));
        var turnInput = new TurnInput(input.ConversationId, [.. input.Messages, ModelMessage.User(text)])
        {
            Options = input.TurnOptions,
            CompletedWrites = input.CompletedWrites,
        };
        ConversationState next;
        try
        {
            var output = await context.CallSubOrchestratorAsync<TurnOutput>(
                TurnRegistration.TurnOrchestrator, turnInput, new SubOrchestrationOptions { InstanceId = turnId });
            next = input with
            {
                Messages = output.Messages,
                CompletedWrites = output.CompletedWrites,
                Turns = input.Turns + 1,
                LastOutcome = output.Outcome,
                LastMessage = output.Message,
            };
        }
        catch (TaskFailedException ex)
        {
            // A failed turn must not take the conversation down: record it and keep serving later messages.
            next = input with
            {
                Messages = turnInput.Messages,
                Turns = input.Turns + 1,
                LastOutcome = TurnOutcome.Failed,
                LastMessage = $"Turn {turnId} failed: {ex.FailureDetails.ErrorMessage}",
            };
        }

        // Messages that arrived during the turn are carried over and start the next one.
        context.ContinueAsNew(next, preserveUnprocessedEvents: true);
        return next;
    }

    internal static string TurnInstanceId(string conversationId, int turn) =>
        string.Create(CultureInfo.InvariantCulture, $"{conversationId}:turn:{turn}");
}
