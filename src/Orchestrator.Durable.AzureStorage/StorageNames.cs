using System.Text;

namespace Orchestrator.Durable.AzureStorage;

/// <summary>The names of a task hub's tables, queues and container, and key helpers.</summary>
internal sealed class StorageNames
{
    public StorageNames(string hub, int partitionCount)
    {
        string lower = hub.ToLowerInvariant();
        this.ControlQueues = Enumerable.Range(0, partitionCount).Select(i => $"{lower}-control-{i:D2}").ToArray();
        this.WorkItemQueue = $"{lower}-workitems";
        this.PoisonQueue = $"{lower}-poison";
        this.HistoryTable = $"{hub}History";
        this.InstancesTable = $"{hub}Instances";
        this.LeasesTable = $"{hub}Leases";
        this.Container = $"{lower}-large";
    }

    public string[] ControlQueues { get; }

    public string WorkItemQueue { get; }

    public string PoisonQueue { get; }

    public string HistoryTable { get; }

    public string InstancesTable { get; }

    public string LeasesTable { get; }

    public string Container { get; }

    /// <summary>The partition of an instance: FNV-1a (32 bit) of the UTF-8 id, stable across processes and versions.</summary>
    // WARNING: persisted placement. Changing the hash moves instances between control queues.
    public static int PartitionOf(string instanceId, int partitionCount)
    {
        uint hash = 2166136261;
        foreach (byte b in Encoding.UTF8.GetBytes(instanceId))
        {
            hash ^= b;
            hash *= 16777619;
        }

        return (int)(hash % (uint)partitionCount);
    }

    /// <summary>
    /// Escapes a value for use as a table key or blob path segment: '%', '/', '\', '#', '?' and
    /// control characters become %XX. Character by character, so prefixes stay prefixes.
    /// </summary>
    public static string EscapeKey(string value)
    {
        if (!value.Any(NeedsEscape))
        {
            return value;
        }

        var sb = new StringBuilder(value.Length + 8);
        foreach (char c in value)
        {
            if (NeedsEscape(c))
            {
                sb.Append('%').Append(((int)c).ToString("X2", System.Globalization.CultureInfo.InvariantCulture));
            }
            else
            {
                sb.Append(c);
            }
        }

        return sb.ToString();
    }

    private static bool NeedsEscape(char c) => c is '%' or '/' or '\\' or '#' or '?' || char.IsControl(c);
}
