using System.Diagnostics;
using Azure;
using Orchestrator.Durable.History;

namespace Orchestrator.Durable.AzureStorage;

/// <summary>
/// One control-queue message as received: its id and current pop receipt. Several held messages
/// share one copy when the queue message carried a batch (a ContinueAsNew start with its carried
/// events); the queue message is deleted only when every one of them is consumed.
/// </summary>
internal sealed class QueueCopy
{
    public required string QueueMessageId { get; init; }

    public required int Partition { get; init; }

    /// <summary>Changes when the message is received again; read and written under the backend's gate.</summary>
    public required string PopReceipt { get; set; }

    /// <summary>The blob holding a large message body, deleted with the message.</summary>
    public string? BlobPath { get; init; }

    /// <summary>Set (under the gate) once the message is being deleted or given back: no more renewals.</summary>
    public bool Released { get; set; }

    /// <summary>A visibility renewal in flight (it changes the receipt); a delete waits for it.</summary>
    public Task? Renewal { get; set; }

    /// <summary>When the queue shows the message again unless renewed (a <see cref="Stopwatch"/> timestamp; real time, as the queue's).</summary>
    public long VisibleUntil { get; set; }
}

/// <summary>A message held in memory for an instance: from a control queue (with its pop receipt) or delivered in-process.</summary>
internal sealed class HeldMessage
{
    public required TaskMessage Message { get; init; }

    public required int Partition { get; init; }

    /// <summary>The queue message it came in; null for a message delivered in-process (an activity result).</summary>
    public QueueCopy? Copy { get; init; }

    public string? QueueMessageId => this.Copy?.QueueMessageId;

    /// <summary>The start of an instance whose row was just inserted: no history exists to be read.</summary>
    public bool NewInstance { get; init; }
}

/// <summary>What one control-queue body holds.</summary>
internal sealed record ControlBody(IReadOnlyList<TaskMessage> Messages, bool NewInstance);

/// <summary>What dispatching a sub-orchestration start found.</summary>
internal enum SubStart
{
    /// <summary>Its instance row was inserted now: no history exists.</summary>
    Created,

    /// <summary>It re-uses a finished instance's id, or is a re-dispatch of the same start.</summary>
    Existing,

    /// <summary>An unfinished instance holds the id; the parent was told and nothing is sent.</summary>
    Refused,
}

/// <summary>The in-process state of one instance: its undelivered messages and whether an episode runs.</summary>
internal sealed class InstanceSession(string instanceId, int partition)
{
    public string InstanceId { get; } = instanceId;

    public int Partition { get; } = partition;

    public List<HeldMessage> Messages { get; } = [];

    public bool Locked { get; set; }

    public string? Token { get; set; }

    /// <summary>When an episode's lock lapses (a worker that died mid-episode in this process, or never released).</summary>
    public DateTimeOffset LockedUntil { get; set; }

    public bool Queued { get; set; }

    public int InMemoryAbandons { get; set; }

    /// <summary>Instance failures (poison messages) that arrived while an episode held the session; run when it lets go.</summary>
    public List<Func<Task>> PendingFailures { get; } = [];

    /// <summary>Set when a commit lost to another writer: the next episode reads the history from storage whatever it was told.</summary>
    public bool MustLoad { get; set; }
}

/// <summary>A committed checkpoint's queue-bound messages (an outbox row).</summary>
internal sealed record OutboxRow(string RowKey, IReadOnlyList<TaskMessage> Messages);

/// <summary>What is known about an instance's history: the current execution's events and the sentinel's ETag.</summary>
internal sealed class HistoryState
{
    public string? ExecutionId { get; init; }

    public int NextSeq { get; init; }

    /// <summary>The sentinel's ETag; null when the history has no sentinel yet.</summary>
    public ETag? ETag { get; init; }

    public required IReadOnlyList<HistoryEvent> Events { get; init; }

    public OrchestrationRuntimeStatus? Status { get; init; }

    public string? CustomStatusHash { get; init; }
}

/// <summary>The backend's state of one locked orchestration work item.</summary>
internal sealed class Episode
{
    public required InstanceSession Session { get; init; }

    public required string Token { get; init; }

    public required HashSet<HeldMessage> Snapshot { get; init; }

    public required HistoryState State { get; set; }

    public bool FromStorage { get; init; }

    public List<OutboxRow> Leftover { get; init; } = [];

    public OutboxRow? CommittedOutbox { get; set; }

    public List<TaskMessage> LocalActivities { get; } = [];

    public bool Committed { get; set; }

    public bool InstanceRowWritten { get; set; }

    /// <summary>The sentinel's ETag after a final checkpoint with an outbox: its row-pending flag is cleared with the outbox's deletion.</summary>
    public ETag? RowPendingETag { get; set; }
}

/// <summary>Where a queue-backed activity work item came from.</summary>
internal sealed class QueuedActivity
{
    public required string QueueMessageId { get; init; }

    public required string PopReceipt { get; set; }

    public string? BlobPath { get; init; }
}

/// <summary>Marks an activity work item served from the in-process queue.</summary>
internal sealed class LocalActivity
{
    public required TaskMessage Message { get; init; }
}

/// <summary>Idle backoff of one queue: doubles from min to max while polls come back empty.</summary>
internal sealed class PollBackoff(TimeSpan min, TimeSpan max)
{
    private long dueAt;
    private long currentTicks;

    public bool Due => Stopwatch.GetTimestamp() >= Volatile.Read(ref this.dueAt);

    public void Idle()
    {
        long next = this.currentTicks == 0 ? min.Ticks : Math.Min(this.currentTicks * 2, max.Ticks);
        this.currentTicks = next;
        Volatile.Write(ref this.dueAt, Stopwatch.GetTimestamp() + (long)(next / (double)TimeSpan.TicksPerSecond * Stopwatch.Frequency));
    }

    public void Reset()
    {
        this.currentTicks = 0;
        Volatile.Write(ref this.dueAt, 0);
    }
}

/// <summary>A bounded least-recently-used cache of instance histories.</summary>
internal sealed class HistoryCache(int capacity)
{
    private readonly Dictionary<string, LinkedListNode<(string Key, HistoryState Value)>> map = new(StringComparer.Ordinal);
    private readonly LinkedList<(string Key, HistoryState Value)> order = new();
    private readonly object gate = new();

    public int Count
    {
        get
        {
            lock (this.gate)
            {
                return this.map.Count;
            }
        }
    }

    public bool TryGet(string key, out HistoryState value)
    {
        lock (this.gate)
        {
            if (this.map.TryGetValue(key, out var node))
            {
                this.order.Remove(node);
                this.order.AddFirst(node);
                value = node.Value.Value;
                return true;
            }
        }

        value = null!;
        return false;
    }

    public void Set(string key, HistoryState value)
    {
        if (capacity == 0)
        {
            return;
        }

        lock (this.gate)
        {
            if (this.map.TryGetValue(key, out var node))
            {
                this.order.Remove(node);
            }

            node = this.order.AddFirst((key, value));
            this.map[key] = node;
            while (this.map.Count > capacity)
            {
                var last = this.order.Last!;
                this.order.RemoveLast();
                this.map.Remove(last.Value.Key);
            }
        }
    }

    public void Remove(string key)
    {
        lock (this.gate)
        {
            if (this.map.Remove(key, out var node))
            {
                this.order.Remove(node);
            }
        }
    }

    public void RemoveWhere(Func<string, bool> predicate)
    {
        lock (this.gate)
        {
            foreach (string key in this.map.Keys.Where(predicate).ToList())
            {
                this.order.Remove(this.map[key]);
                this.map.Remove(key);
            }
        }
    }
}

/// <summary>An auto-reset signal that wakes one waiting dispatcher loop.</summary>
internal sealed class WorkSignal
{
    private TaskCompletionSource tcs = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Set() => Interlocked.Exchange(ref this.tcs, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    public async Task WaitAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        Task signal = Volatile.Read(ref this.tcs).Task;
        try
        {
            // Polling cadence is wall-clock time even under a fake clock, or a test clock would stall the worker.
            await signal.WaitAsync(timeout, TimeProvider.System, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // No local signal within the polling interval: poll storage anyway (other processes).
        }
    }
}
