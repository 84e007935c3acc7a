using Orchestrator.Durable;

namespace Orchestrator.Bench;

/// <summary>The orchestrators and activities the workloads run.</summary>
internal static class Workloads
{
    public const string HelloSequence = "HelloSequence";
    public const string FanOut = "FanOut";
    public const string Waiter = "Waiter";
    public const string EventName = "go";
    public const int SequenceLength = 5;
    public const int FanOutWidth = 100;

    public static DurableTaskRegistry CreateRegistry() =>
        new DurableTaskRegistry()
            .AddActivityFunc<string, string>("Hello", (_, name) => $"Hello {name}!")
            .AddOrchestratorFunc<string, string>(HelloSequence, async (ctx, name) =>
            {
                string last = string.Empty;
                for (int i = 0; i < SequenceLength; i++)
                {
                    last = await ctx.CallActivityAsync<string>("Hello", $"{name}-{i}");
                }

                return last;
            })
            .AddOrchestratorFunc<int, int>(FanOut, async (ctx, width) =>
            {
                var tasks = new Task<string>[width];
                for (int i = 0; i < width; i++)
                {
                    tasks[i] = ctx.CallActivityAsync<string>("Hello", i.ToString(System.Globalization.CultureInfo.InvariantCulture));
                }

                string[] results = await Task.WhenAll(tasks);
                return results.Length;
            })
            .AddOrchestratorFunc<string, string>(Waiter, async (ctx, _) => await ctx.WaitForExternalEvent<string>(EventName));
}
