using Orchestrator.Durable;
using Orchestrator.Durable.AzureStorage;
using Orchestrator.Durable.Worker;

// Usage: CrashHost <connection string> <task hub> <worker id>
// Runs a worker until stdin closes (or the process is killed), with short leases so a killed
// process's partitions move within seconds. Prints "ready <worker id>" once the worker runs.
if (args.Length != 3)
{
    Console.Error.WriteLine("usage: CrashHost <connection string> <task hub> <worker id>");
    return 2;
}

var registry = new DurableTaskRegistry()
    .AddActivityFunc<int, int>("Step", async (ctx, x) =>
    {
        await Task.Delay(TimeSpan.FromMilliseconds(100), TimeProvider.System, ctx.CancellationToken).ConfigureAwait(false);
        return x + 1;
    })
    .AddOrchestratorFunc<int, int>("Chain", async (ctx, x) =>
    {
        for (int i = 0; i < 5; i++)
        {
            x = await ctx.CallActivityAsync<int>("Step", x).ConfigureAwait(true);
        }

        return x;
    });

await using var backend = new AzureStorageOrchestrationBackend(new AzureStorageOrchestrationBackendOptions
{
    ConnectionString = args[0],
    TaskHubName = args[1],
    WorkerId = args[2],
    LeaseDuration = TimeSpan.FromSeconds(2),
    LeaseRenewInterval = TimeSpan.FromMilliseconds(500),
    MaxPollingInterval = TimeSpan.FromMilliseconds(250),
});
await using var worker = new DurableTaskWorker(backend, registry, new DurableTaskWorkerOptions
{
    WorkerId = args[2],
    OrchestrationLockTimeout = TimeSpan.FromSeconds(5),
    MaxPollingInterval = TimeSpan.FromMilliseconds(250),
});
await worker.StartAsync(CancellationToken.None).ConfigureAwait(false);
Console.WriteLine($"ready {args[2]}");
await Console.In.ReadToEndAsync().ConfigureAwait(false);
await worker.StopAsync(CancellationToken.None).ConfigureAwait(false);
Console.WriteLine($"stopped {args[2]} after {backend.StorageOperationCount} storage operations");
return 0;
