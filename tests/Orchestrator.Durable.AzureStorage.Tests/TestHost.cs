using Orchestrator.Durable.Client;
using Orchestrator.Durable.Worker;

namespace Orchestrator.Durable.AzureStorage.Tests;

/// <summary>A backend, a worker and a client on a fresh task hub.</summary>
internal sealed class TestHost : IAsyncDisposable
{
    private TestHost(AzureStorageOrchestrationBackend backend, DurableTaskWorker? worker, DurableTaskClient client)
    {
        this.Backend = backend;
        this.Worker = worker;
        this.Client = client;
    }

    public AzureStorageOrchestrationBackend Backend { get; }

    public DurableTaskWorker? Worker { get; }

    public DurableTaskClient Client { get; }

    public static AzureStorageOrchestrationBackendOptions Options(AzuriteFixture azurite, string hub, TimeProvider? time = null) => new()
    {
        ConnectionString = azurite.ConnectionString,
        TaskHubName = hub,
        TimeProvider = time ?? TimeProvider.System,
        MaxPollingInterval = TimeSpan.FromMilliseconds(250),
        MinPollingInterval = TimeSpan.FromMilliseconds(20),
    };

    public static async Task<TestHost> StartAsync(AzureStorageOrchestrationBackendOptions options, DurableTaskRegistry? registry, DurableTaskWorkerOptions? workerOptions = null)
    {
        var backend = new AzureStorageOrchestrationBackend(options);
        await backend.CreateIfNotExistsAsync(default);
        DurableTaskWorker? worker = null;
        if (registry is not null)
        {
            worker = new DurableTaskWorker(backend, registry, workerOptions ?? new DurableTaskWorkerOptions
            {
                TimeProvider = options.TimeProvider,
                MaxPollingInterval = TimeSpan.FromMilliseconds(250),
                OrchestrationLockTimeout = TimeSpan.FromSeconds(30),
            });
            await worker.StartAsync(default);
        }

        return new TestHost(backend, worker, new DurableTaskClient(backend));
    }

    public async ValueTask DisposeAsync()
    {
        if (this.Worker is not null)
        {
            await this.Worker.DisposeAsync();
        }

        await this.Backend.DisposeAsync();
    }
}
