using Orchestrator.Durable.Backend;
using Orchestrator.Durable.Tests.Conformance;

namespace Orchestrator.Durable.AzureStorage.Tests;

/// <summary>The backend conformance suite against Azurite, each test on its own task hub.</summary>
/// <remarks>
/// The suite's clock is a fake one. Queue visibility runs on real time, so messages are hidden for
/// at most one second at a time and looked at again until the fake clock says they are due.
/// The worker runs four orchestration fetch loops (ContinueAsNew with a carried event lost its event
/// under two loops before a start and its carried events were sent as one queue message).
/// </remarks>
[Collection(AzuriteCollection.Name)]
public sealed class AzureStorageConformanceTests(AzuriteFixture azurite) : BackendConformanceTests
{
    /// <summary>Four fetch loops: the backend must keep one instance's messages together under concurrent fetches.</summary>
    protected override int DispatcherCount => 4;

    protected override IOrchestrationBackend CreateBackend(TimeProvider timeProvider) =>
        new AzureStorageOrchestrationBackend(new AzureStorageOrchestrationBackendOptions
        {
            ConnectionString = azurite.ConnectionString,
            TaskHubName = AzuriteFixture.NewHubName("conf"),
            TimeProvider = timeProvider,
            PartitionCount = 2,
            MaxMessageVisibilityDelay = TimeSpan.FromSeconds(1),
            MinPollingInterval = TimeSpan.FromMilliseconds(10),
            MaxPollingInterval = TimeSpan.FromMilliseconds(100),
        });
}
