using System.Collections.Concurrent;
using Azure.Core;
using Azure.Core.Pipeline;

namespace Orchestrator.Durable.AzureStorage;

/// <summary>Counts every request sent to storage (retries included); added to all clients' pipelines.</summary>
internal sealed class StorageRequestCounter(string hubPrefix) : HttpPipelinePolicy
{
    private readonly ConcurrentDictionary<string, long> byKind = new(StringComparer.Ordinal);
    private long count;

    public long Count => Interlocked.Read(ref this.count);

    /// <summary>Requests by kind ("GET Instances(entity)", "GET History(query)", "DELETE control/messages/{id}", ...): where a workload's requests go.</summary>
    public IReadOnlyDictionary<string, long> ByKind => new SortedDictionary<string, long>(this.byKind, StringComparer.Ordinal);

    public override void Process(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
    {
        this.Record(message);
        ProcessNext(message, pipeline);
    }

    public override ValueTask ProcessAsync(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
    {
        this.Record(message);
        return ProcessNextAsync(message, pipeline);
    }

    private void Record(HttpMessage message)
    {
        Interlocked.Increment(ref this.count);
        this.byKind.AddOrUpdate(this.Kind(message.Request), 1, (_, n) => n + 1);
    }

    private string Kind(Request request)
    {
        // Path: /{account}/{table or queue or container}[/{...}]; Azurite puts the account in the path.
        string path = request.Uri.Path;
        string[] parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        int i = parts.Length > 1 && !parts[0].StartsWith(hubPrefix, StringComparison.OrdinalIgnoreCase) ? 1 : 0;
        string resource = parts.Length > i ? parts[i] : string.Empty;
        int paren = resource.IndexOf('(', StringComparison.Ordinal);
        string shape = string.Empty;
        if (paren >= 0)
        {
            // An entity: Table(PartitionKey='..',RowKey='..'); a query: GET Table(), with or without $filter.
            shape = resource.Length - paren > 2 ? "(entity)" : request.Method == RequestMethod.Get ? "(query)" : string.Empty;
            resource = resource[..paren];
        }

        if (request.Uri.Query.Contains("$filter", StringComparison.Ordinal) || request.Uri.Query.Contains("%24filter", StringComparison.Ordinal))
        {
            shape = "(query)";
        }

        if (resource.StartsWith(hubPrefix, StringComparison.OrdinalIgnoreCase))
        {
            resource = resource[hubPrefix.Length..].TrimStart('-');
        }

        resource = resource.TrimEnd('0', '1', '2', '3', '4', '5', '6', '7', '8', '9').TrimEnd('-');
        if (parts.Length > i + 1 && parts[i + 1] == "messages")
        {
            resource += parts.Length > i + 2 ? "/messages/{id}" : "/messages";
        }

        return $"{request.Method} {resource}{shape}";
    }
}
