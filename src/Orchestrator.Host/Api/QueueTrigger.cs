using System.Text;
using System.Text.Json;
using Azure.Storage.Queues;
using Azure.Storage.Queues.Models;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Orchestrator.Host.Api;

/// <summary>
/// The Azure Storage queue trigger: each message <c>{"conversationId","text","messageId"}</c> on the configured queue
/// starts or continues a conversation exactly as <c>POST .../messages</c> does (the sender is trusted: writing to the
/// queue needs the storage account's credentials). <c>messageId</c> shares the conversation's Idempotency-Key ledger.
/// A malformed message goes to <c>{queue}-poison</c> at once with the reason; one that fails is delivered again after
/// <see cref="ApiSettings.VisibilityTimeout"/> and goes to the poison queue after <see cref="ApiSettings.MaxDequeueCount"/>
/// deliveries. The message is deleted only after the turn's message is durable: at-least-once, deduplicated.
/// </summary>
internal sealed class QueueTrigger : BackgroundService
{
    private const int BatchSize = 16;
    private static readonly TimeSpan ProcessingVisibility = TimeSpan.FromMinutes(1);
    private readonly QueueClient queue;
    private readonly QueueClient poison;
    private readonly ApiSettings settings;
    private readonly ConversationService conversations;
    private readonly ConversationRuntime runtime;
    private readonly AccessKeys keys;
    private readonly ILogger logger;

    /// <param name="queues">The account's queue service, made the way the backend makes its own (connection string or credential).</param>
    public QueueTrigger(QueueServiceClient queues, ApiSettings settings, ConversationService conversations, ConversationRuntime runtime, AccessKeys keys, ILogger<QueueTrigger> logger)
    {
        ArgumentNullException.ThrowIfNull(queues);
        this.keys = keys;
        this.settings = settings;
        this.queue = queues.GetQueueClient(settings.QueueName);
        this.poison = queues.GetQueueClient(settings.QueueName + "-poison");
        this.conversations = conversations;
        this.runtime = runtime;
        this.logger = logger;
    }

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        await this.queue.CreateIfNotExistsAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        await this.poison.CreateIfNotExistsAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        Log.QueueTriggerStarted(this.logger, this.queue.Name, this.poison.Name, this.settings.MaxDequeueCount);
        await base.StartAsync(cancellationToken).ConfigureAwait(false);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        TimeSpan idle = TimeSpan.FromMilliseconds(50);
        while (!stoppingToken.IsCancellationRequested)
        {
            QueueMessage[] batch;
            try
            {
                batch = (await this.queue.ReceiveMessagesAsync(BatchSize, ProcessingVisibility, stoppingToken).ConfigureAwait(false)).Value;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                // The storage account unreachable for a moment must not stop the host: log, back off, poll again.
                Log.QueuePollFailed(this.logger, ex);
                batch = [];
            }

            if (batch.Length == 0)
            {
                // Back off while the queue is empty, as Functions does, up to maxPollingInterval.
                await Task.Delay(idle, this.runtime.Time, stoppingToken).ConfigureAwait(false);
                idle = TimeSpan.FromTicks(Math.Min(idle.Ticks * 2, Math.Max(this.settings.MaxPollingInterval.Ticks, TimeSpan.FromMilliseconds(50).Ticks)));
                continue;
            }

            idle = TimeSpan.FromMilliseconds(50);
            await Task.WhenAll(batch.Select(m => this.HandleSafelyAsync(m, stoppingToken))).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// A message whose delete, update or poisoning failed (its pop receipt expired, storage unreachable) is left to
    /// become visible again and be delivered anew; the ledger makes that redelivery harmless.
    /// </summary>
    private async Task HandleSafelyAsync(QueueMessage message, CancellationToken cancellationToken)
    {
        try
        {
            await this.HandleAsync(message, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            Log.QueueMessageFailed(this.logger, message.MessageId, message.DequeueCount, $"{ex.GetType().Name}: {ex.Message}");
        }
    }

    /// <summary>Handles one delivery: parse, deduplicate, send; then delete, retry later, or poison.</summary>
    internal async Task HandleAsync(QueueMessage message, CancellationToken cancellationToken)
    {
        string text = message.Body.ToString();
        if (Parse(text, out QueueTriggerMessage? parsed) is { } malformed)
        {
            await this.PoisonAsync(message, text, "malformed: " + malformed, cancellationToken).ConfigureAwait(false);
            return;
        }

        string key = parsed!.MessageId ?? message.MessageId;
        string scope = ConversationEndpoints.MessageScope(parsed.ConversationId!);
        (string Reason, bool Permanent)? failure;
        try
        {
            failure = await this.SendOnceAsync(scope, key, parsed, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            failure = ($"{ex.GetType().Name}: {ex.Message}", false);
        }

        if (failure is null)
        {
            await this.queue.DeleteMessageAsync(message.MessageId, message.PopReceipt, cancellationToken).ConfigureAwait(false);
            return;
        }

        if (failure.Value.Permanent || message.DequeueCount >= this.settings.MaxDequeueCount)
        {
            string reason = failure.Value.Permanent ? failure.Value.Reason : $"failed {message.DequeueCount} deliveries; last: {failure.Value.Reason}";
            await this.PoisonAsync(message, text, reason, cancellationToken).ConfigureAwait(false);
            return;
        }

        Log.QueueMessageFailed(this.logger, message.MessageId, message.DequeueCount, failure.Value.Reason);
        await this.queue.UpdateMessageAsync(message.MessageId, message.PopReceipt, visibilityTimeout: this.settings.VisibilityTimeout, cancellationToken: cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Null when the message is sent (or was already); otherwise why not, and whether retrying cannot help.</summary>
    private async Task<(string Reason, bool Permanent)?> SendOnceAsync(string scope, string key, QueueTriggerMessage message, CancellationToken cancellationToken)
    {
        LedgerClaim claim = await this.runtime.Ledger.ClaimAsync(scope, key, ConversationEndpoints.MessageHash(message.Text!), cancellationToken).ConfigureAwait(false);
        switch (claim.Kind)
        {
            case ClaimKind.Completed:
                Log.QueueMessageHandled(this.logger, key, message.ConversationId!, "already sent (duplicate messageId)");
                return null;
            case ClaimKind.Mismatch:
                return ("malformed: messageId was already used for a different message in this conversation", true);
            case ClaimKind.InProgress:
                return ("a request with the same messageId is in progress", false);
        }

        SendOutcome outcome;
        try
        {
            outcome = await this.conversations.SendAsync(message.ConversationId!, message.Text!, authorized: true, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await this.runtime.Ledger.ReleaseAsync(scope, key, CancellationToken.None).ConfigureAwait(false);
            throw;
        }

        if (outcome is SendOutcome.Started or SendOutcome.Queued)
        {
            CheckStatusResponse body = ConversationEndpoints.CheckStatus(string.Empty, message.ConversationId!, outcome == SendOutcome.Started, this.keys);
            await this.runtime.Ledger.CompleteAsync(scope, key, ApiResponses.Ok(202, body, body.StatusQueryGetUri), CancellationToken.None).ConfigureAwait(false);
            Log.QueueMessageHandled(this.logger, key, message.ConversationId!, outcome.ToString());
            return null;
        }

        await this.runtime.Ledger.ReleaseAsync(scope, key, CancellationToken.None).ConfigureAwait(false);
        return ($"conversation '{message.ConversationId}' is {outcome}: it takes no more messages", false);
    }

    /// <summary>Why <paramref name="text"/> is not a trigger message, or null.</summary>
    internal static string? Parse(string text, out QueueTriggerMessage? message)
    {
        message = null;
        string json = text.TrimStart();
        if (!json.StartsWith('{'))
        {
            // Azure Functions' queue extension sends base64 by default (messageEncoding): accept both.
            try
            {
                json = Encoding.UTF8.GetString(Convert.FromBase64String(text.Trim()));
            }
            catch (FormatException)
            {
                return "the message is neither a JSON object nor base64 of one";
            }
        }

        try
        {
            message = JsonSerializer.Deserialize<QueueTriggerMessage>(json, ApiResponses.Json);
        }
        catch (JsonException ex)
        {
            return "the message is not valid JSON: " + ex.Message;
        }

        if (message is null)
        {
            return "the message is null";
        }

        if (!ConversationService.IsValidConversationId(message.ConversationId))
        {
            return "conversationId is missing or not 1-128 letters, digits, '.', '_' or '-'";
        }

        if (ConversationService.CheckText(message.Text) is { } problem)
        {
            return problem;
        }

        return message.MessageId is { Length: 0 or > 255 } ? "messageId must be 1-255 characters when given" : null;
    }

    private async Task PoisonAsync(QueueMessage message, string text, string reason, CancellationToken cancellationToken)
    {
        string poisoned = JsonSerializer.Serialize(
            new { reason, queueMessageId = message.MessageId, dequeueCount = message.DequeueCount, insertedOn = message.InsertedOn, message = text },
            ApiResponses.Json);
        // Add to the poison queue first, then delete: a crash in between leaves a duplicate in poison, never a loss.
        await this.poison.SendMessageAsync(poisoned, cancellationToken).ConfigureAwait(false);
        await this.queue.DeleteMessageAsync(message.MessageId, message.PopReceipt, cancellationToken).ConfigureAwait(false);
        Log.QueueMessagePoisoned(this.logger, message.MessageId, this.poison.Name, reason);
    }
}
