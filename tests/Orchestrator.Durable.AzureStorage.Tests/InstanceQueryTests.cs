using Orchestrator.Durable.Backend;

namespace Orchestrator.Durable.AzureStorage.Tests;

/// <summary>
/// What a paged instance query costs on Azure Storage: one table query per page (filtered in the service, not read
/// whole), and, without inputs and outputs, no payload reads. The paging behaviour itself is in the conformance suite.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class InstanceQueryTests(AzuriteFixture azurite)
{
    [Fact(Timeout = 60_000)]
    public async Task QueryInstancesAsync_Pages_OneTableQueryPerPageAndNoPayloadReads()
    {
        // No worker: the instances stay Pending and nothing else talks to storage while the test counts.
        await using TestHost host = await TestHost.StartAsync(TestHost.Options(azurite, AzuriteFixture.NewHubName("query")), registry: null);
        string large = new('x', 40_000);
        for (int i = 0; i < 7; i++)
        {
            await host.Client.ScheduleNewOrchestrationInstanceAsync("Any", i == 3 ? large : "small", new() { InstanceId = $"q-{i}" });
        }

        await host.Client.ScheduleNewOrchestrationInstanceAsync("Any", "other", new() { InstanceId = "r-0" });

        IReadOnlyDictionary<string, long> before = host.Backend.StorageOperationsByKind;
        var ids = new List<string>();
        int pages = 0;
        await foreach (Page<OrchestrationMetadata> page in host.Client.GetAllInstancesAsync(new InstanceQuery { InstanceIdPrefix = "q-", PageSize = 3, FetchInputsAndOutputs = false }).AsPages())
        {
            pages++;
            ids.AddRange(page.Select(m => m.InstanceId));
            Assert.All(page, m => Assert.Null(m.SerializedInput));
        }

        Dictionary<string, long> delta = Delta(before, host.Backend.StorageOperationsByKind);

        Assert.Equal(Enumerable.Range(0, 7).Select(i => $"q-{i}"), ids);
        Assert.Equal(3, pages);
        Assert.Equal(new Dictionary<string, long> { ["GET Instances(query)"] = 3 }, delta);

        // With inputs: the large one comes back from its blob.
        OrchestrationMetadata withInput = Assert.Single(await host.Client.QueryInstancesAsync(new InstanceQuery { InstanceIdPrefix = "q-3" }));
        Assert.Equal(large.Length + 2, withInput.SerializedInput!.Length);
    }

    [Fact(Timeout = 60_000)]
    public async Task QueryInstancesAsync_NoFilterFirstPage_CountedAsATableQuery()
    {
        await using TestHost host = await TestHost.StartAsync(TestHost.Options(azurite, AzuriteFixture.NewHubName("query")), registry: null);
        await host.Client.ScheduleNewOrchestrationInstanceAsync("Any", null, new() { InstanceId = "only" });
        IReadOnlyDictionary<string, long> before = host.Backend.StorageOperationsByKind;

        Page<OrchestrationMetadata> page = await host.Client.QueryInstancesAsync();

        Assert.Equal(["only"], page.Select(m => m.InstanceId));
        Assert.Null(page.ContinuationToken);
        Assert.Equal(new Dictionary<string, long> { ["GET Instances(query)"] = 1 }, Delta(before, host.Backend.StorageOperationsByKind));
    }

    private static Dictionary<string, long> Delta(IReadOnlyDictionary<string, long> before, IReadOnlyDictionary<string, long> after) =>
        after.Select(kv => (kv.Key, Value: kv.Value - before.GetValueOrDefault(kv.Key)))
            .Where(kv => kv.Value != 0)
            .ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
}
