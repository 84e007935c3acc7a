using Azure.Core;
using Azure.Core.Pipeline;

namespace Orchestrator.Durable.AzureStorage;

/// <summary>Counts every request sent to storage (retries included); added to all clients' pipelines.</summary>
internal sealed class StorageRequestCounter : HttpPipelinePolicy
{
    private long count;

    public long Count => Interlocked.Read(ref this.count);

    public override void Process(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
    {
        Interlocked.Increment(ref this.count);
        ProcessNext(message, pipeline);
    }

    public override ValueTask ProcessAsync(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
    {
        Interlocked.Increment(ref this.count);
        return ProcessNextAsync(message, pipeline);
    }
}
