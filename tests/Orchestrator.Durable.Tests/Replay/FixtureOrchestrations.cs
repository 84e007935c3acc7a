namespace Orchestrator.Durable.Tests.Replay;

/// <summary>
/// The orchestrators whose recorded histories live in Fixtures/History. Changing what one of these
/// schedules is exactly the change the replay tests exist to catch: update a fixture only when the
/// change is deliberate and old instances can no longer be in flight.
/// </summary>
internal static class FixtureOrchestrations
{
    /// <summary>Registers the fixture orchestrators and activities, leaving out the orchestrator named <paramref name="except"/>.</summary>
    public static DurableTaskRegistry Register(DurableTaskRegistry registry, string? except = null)
    {
        registry
            .AddActivityFunc<string, string>("Hello", (_, name) => $"Hello {name}!")
            .AddActivityFunc<int, int>("Square", (_, x) => x * x)
            .AddActivityFunc<string, string>("Flaky", (ctx, s) => ctx.TaskId < 2 ? throw new InvalidOperationException("transient") : s.ToUpperInvariant());

        void Add<TIn, TOut>(string name, Func<TaskOrchestrationContext, TIn, Task<TOut>> f)
        {
            if (name != except)
            {
                registry.AddOrchestratorFunc(name, f);
            }
        }

        Add<string?, List<string>>("Sequence", async (ctx, _) =>
        [
            await ctx.CallActivityAsync<string>("Hello", "Tokyo"),
            await ctx.CallActivityAsync<string>("Hello", "Seattle"),
            await ctx.CallActivityAsync<string>("Hello", "London"),
        ]);
        Add<int, int>("FanOut", async (ctx, n) =>
        {
            int[] squares = await Task.WhenAll(Enumerable.Range(1, n).Select(i => ctx.CallActivityAsync<int>("Square", i)));
            return squares.Sum();
        });
        Add<string, string>("Approval", async (ctx, order) =>
        {
            ctx.SetCustomStatus(new { stage = "waiting", order });
            try
            {
                bool approved = await ctx.WaitForExternalEvent<bool>("approval", TimeSpan.FromHours(24));
                return approved ? await ctx.CallActivityAsync<string>("Hello", order) : "rejected";
            }
            catch (TimeoutException)
            {
                return "expired";
            }
        });
        Add<string, string>("Retry", (ctx, s) =>
            ctx.CallActivityAsync<string>("Flaky", s, TaskOptions.FromRetryPolicy(new RetryPolicy(3, TimeSpan.FromMilliseconds(10)))));
        Add<string?, string>("WithChild", async (ctx, _) =>
        {
            string child = await ctx.CallSubOrchestratorAsync<string>("Approval", "A1000", new SubOrchestrationOptions { InstanceId = ctx.InstanceId + "-child" });
            return $"child said {child}";
        });
        return registry;
    }
}
