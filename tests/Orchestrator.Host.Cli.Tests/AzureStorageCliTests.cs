using System.Text.Json;
using Orchestrator.Agents;
using Orchestrator.Durable;
using Orchestrator.Testing;

namespace Orchestrator.Host.Cli.Tests;

/// <summary>Azurite for the Azure Storage CLI tests (found or started by <see cref="AzuriteInstance"/>'s rules).</summary>
public sealed class CliAzuriteFixture : IAsyncLifetime
{
    private AzuriteInstance? _instance;

    public string ConnectionString => _instance?.ConnectionString ?? string.Empty;

    public async Task InitializeAsync() => _instance = await AzuriteInstance.AcquireAsync("azurite-cli-tests-", CancellationToken.None);

    public Task DisposeAsync()
    {
        _instance?.Dispose();
        return Task.CompletedTask;
    }
}

public sealed class AzureStorageCliTests(CliAzuriteFixture azurite) : IClassFixture<CliAzuriteFixture>
{
    [Fact(Timeout = 120_000)]
    public async Task Commands_OnAzureStorageBackend_StatusApproveReplayHistoryPurge()
    {
        var settings = new HostSettings
        {
            StorageConnectionString = azurite.ConnectionString,
            HubName = "cli" + Guid.NewGuid().ToString("N")[..12],
            PartitionCount = 1,
        };
        Assert.True(settings.UsesAzureStorage);
        await using var h = await CliHarness.StartAsync(settings: settings);
        PendingConfirmation pending = await h.StartRefundTurnAsync("az1");

        CliRun status = await h.RunAsync("status", "az1");
        Assert.True(status.ExitCode == 0, status.ToString());
        Assert.Contains($"hash       {pending.ArgumentsHash}", status.Stdout, StringComparison.Ordinal);

        CliRun approve = await h.RunAsync("approve", "az1/call_2");
        Assert.True(approve.ExitCode == 0, approve.ToString());
        Assert.Equal(OrchestrationRuntimeStatus.Completed, (await h.WaitForCompletionAsync("az1")).RuntimeStatus);
        Assert.Single(await h.LedgerAsync());

        CliRun replay = await h.RunAsync("replay", "az1", "--json");
        Assert.True(replay.ExitCode == 0, replay.ToString());
        Assert.True(JsonDocument.Parse(replay.Stdout).RootElement.GetProperty("deterministic").GetBoolean());
        Assert.Single(await h.LedgerAsync());

        CliRun history = await h.RunAsync("history", "az1", "--json");
        Assert.Equal(JsonValueKind.Array, JsonDocument.Parse(history.Stdout).RootElement.ValueKind);

        CliRun purge = await h.RunAsync("purge", "az1");
        Assert.True(purge.ExitCode == 0, purge.ToString());
        Assert.Null(await h.Client.GetInstanceAsync("az1"));
    }
}
