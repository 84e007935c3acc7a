using Orchestrator.Durable.Client;
using Orchestrator.Durable.Sqlite;
using Orchestrator.Durable.Worker;

namespace Orchestrator.Durable.Tests;

public class SmokeTests
{
    [Fact(Timeout = 30_000)]
    public async Task HelloSequence_Completes()
    {
        var registry = new DurableTaskRegistry()
            .AddActivityFunc<string, string>("Hello", (ctx, name) => $"Hello {name}!")
            .AddOrchestratorFunc<string, List<string>>("Seq", async (ctx, _) =>
            {
                var r = new List<string>();
                r.Add(await ctx.CallActivityAsync<string>("Hello", "Tokyo"));
                r.Add(await ctx.CallActivityAsync<string>("Hello", "Seattle"));
                r.Add(await ctx.CallActivityAsync<string>("Hello", "London"));
                return r;
            });
        await using var backend = new SqliteOrchestrationBackend(SqliteOrchestrationBackendOptions.InMemory());
        await using var worker = new DurableTaskWorker(backend, registry);
        await worker.StartAsync(default);
        var client = new DurableTaskClient(backend);
        string id = await client.ScheduleNewOrchestrationInstanceAsync("Seq");
        var m = await client.WaitForInstanceCompletionAsync(id);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, m.RuntimeStatus);
        Assert.Equal(["Hello Tokyo!", "Hello Seattle!", "Hello London!"], m.ReadOutputAs<List<string>>());
    }
}
