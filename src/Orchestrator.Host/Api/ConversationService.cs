using System.Text.RegularExpressions;
using Orchestrator.Agents;
using Orchestrator.Agents.Models;
using Orchestrator.Durable;

namespace Orchestrator.Host.Api;

/// <summary>What sending a message did.</summary>
internal enum SendOutcome
{
    /// <summary>The conversation was new: started, and the message queued as its first turn.</summary>
    Started = 0,

    /// <summary>The conversation existed: the message was queued (it starts a turn when no other turn runs).</summary>
    Queued = 1,

    /// <summary>The conversation exists and the caller may not write to it; nothing was sent.</summary>
    Forbidden = 2,

    /// <summary>The conversation has ended (terminated or failed); nothing was sent.</summary>
    Closed = 3,
}

/// <summary>Starting conversations and sending them messages: the one path the HTTP trigger and the queue trigger share.</summary>
internal sealed partial class ConversationService(ConversationRuntime runtime)
{
    /// <summary>Longest user message accepted, in characters.</summary>
    public const int MaxTextLength = 32_768;

    /// <summary>
    /// Conversation ids: 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit. No ':' keeps them apart
    /// from turn instance ids (<c>{conversation}:turn:{n}</c>).
    /// </summary>
    public static bool IsValidConversationId(string? id) => id is not null && ConversationIdPattern().IsMatch(id);

    /// <summary>Why <paramref name="text"/> is not an acceptable message, or null.</summary>
    public static string? CheckText(string? text) =>
        string.IsNullOrWhiteSpace(text) ? "text is required and must not be blank."
        : text.Length > MaxTextLength ? $"text is longer than {MaxTextLength} characters."
        : null;

    /// <summary>
    /// Starts the conversation if it does not exist (anyone may start a new one), then queues the message; an existing
    /// conversation takes messages only when <paramref name="authorized"/>. Returns once the message is durable.
    /// </summary>
    public async Task<SendOutcome> SendAsync(string conversationId, string text, bool authorized, CancellationToken cancellationToken)
    {
        OrchestrationMetadata? existing = await runtime.Client.GetInstanceAsync(conversationId, cancellationToken).ConfigureAwait(false);
        bool started = false;
        if (existing is null)
        {
            AgentDefinition agent = runtime.Agent;
            var state = new ConversationState(conversationId, agent.SystemPrompt is { } prompt ? [ModelMessage.System(prompt)] : [])
            {
                TurnOptions = agent.TurnOptions,
            };
            try
            {
                await Conversations.StartAsync(runtime.Client, state, cancellationToken).ConfigureAwait(false);
                started = true;
            }
            catch (OrchestrationAlreadyExistsException)
            {
                // Another request started it first: from here on it is an existing conversation.
                existing = await runtime.Client.GetInstanceAsync(conversationId, cancellationToken).ConfigureAwait(false);
            }
        }

        if (!started)
        {
            if (!authorized)
            {
                return SendOutcome.Forbidden;
            }

            if (existing is null || existing.IsCompleted || existing.Name != TurnRegistration.ConversationOrchestrator)
            {
                return SendOutcome.Closed;
            }
        }

        try
        {
            await Conversations.SendUserMessageAsync(runtime.Client, conversationId, text, cancellationToken).ConfigureAwait(false);
        }
        catch (OrchestrationNotRunningException)
        {
            return SendOutcome.Closed;
        }

        return started ? SendOutcome.Started : SendOutcome.Queued;
    }

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    private static partial Regex ConversationIdPattern();
}
