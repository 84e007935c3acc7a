using Orchestrator.Durable.Core;

namespace Orchestrator.Durable.Worker;

/// <summary>
/// Orchestrations kept in memory between episodes, by instance id: at most a fixed number, each for at most
/// an idle time, least recently used evicted first. Thread-safe.
/// </summary>
/// <remarks>
/// An episode takes its instance's session out (so no two episodes share one) and puts it back only after its
/// checkpoint committed and its messages were released. A session taken out and not put back is simply gone:
/// the next episode of that instance replays from the stored history.
/// </remarks>
internal sealed class OrchestrationSessionCache(int capacity, TimeSpan idleTimeout, TimeProvider time)
{
    private readonly Lock gate = new();
    private readonly Dictionary<string, LinkedListNode<Entry>> byInstance = new(StringComparer.Ordinal);
    private readonly LinkedList<Entry> byAge = new(); // least recently used first

    /// <summary>Sessions held now.</summary>
    public int Count
    {
        get
        {
            lock (this.gate)
            {
                return this.byInstance.Count;
            }
        }
    }

    /// <summary>Removes and returns the instance's session, or null (none, or idle too long).</summary>
    public OrchestrationSession? TryTake(string instanceId)
    {
        lock (this.gate)
        {
            this.EvictIdleLocked();
            return this.RemoveLocked(instanceId)?.Value.Session;
        }
    }

    /// <summary>
    /// The history of the instance's kept session, or null; leaves the session where it is. A fetch uses it to skip
    /// reading a history the worker already holds (any thread).
    /// </summary>
    public KeptHistory? PeekHistory(string instanceId)
    {
        lock (this.gate)
        {
            return this.byInstance.TryGetValue(instanceId, out LinkedListNode<Entry>? node) ? node.Value.Session.Kept : null;
        }
    }

    /// <summary>Keeps the instance's session, evicting the least recently used one beyond the capacity.</summary>
    public void Put(string instanceId, OrchestrationSession session)
    {
        if (capacity <= 0)
        {
            return;
        }

        lock (this.gate)
        {
            this.RemoveLocked(instanceId);
            this.byInstance[instanceId] = this.byAge.AddLast(new Entry(instanceId, session, time.GetUtcNow()));
            while (this.byInstance.Count > capacity)
            {
                this.RemoveOldestLocked();
            }

            this.EvictIdleLocked();
        }
    }

    /// <summary>Forgets the instance's session, if one is held.</summary>
    public void Remove(string instanceId)
    {
        lock (this.gate)
        {
            this.RemoveLocked(instanceId);
        }
    }

    /// <summary>Drops sessions idle longer than the idle timeout.</summary>
    public void EvictIdle()
    {
        lock (this.gate)
        {
            this.EvictIdleLocked();
        }
    }

    /// <summary>Drops every session.</summary>
    public void Clear()
    {
        lock (this.gate)
        {
            this.byInstance.Clear();
            this.byAge.Clear();
        }
    }

    private LinkedListNode<Entry>? RemoveLocked(string instanceId)
    {
        if (!this.byInstance.Remove(instanceId, out LinkedListNode<Entry>? node))
        {
            return null;
        }

        this.byAge.Remove(node);
        return node;
    }

    private void EvictIdleLocked()
    {
        DateTimeOffset cutoff = time.GetUtcNow() - idleTimeout;
        while (this.byAge.First is { } oldest && oldest.Value.LastUsed <= cutoff)
        {
            this.RemoveOldestLocked();
        }
    }

    private void RemoveOldestLocked()
    {
        LinkedListNode<Entry> oldest = this.byAge.First!;
        this.byAge.RemoveFirst();
        this.byInstance.Remove(oldest.Value.InstanceId);
    }

    private sealed record Entry(string InstanceId, OrchestrationSession Session, DateTimeOffset LastUsed);
}
