using System.Collections.Concurrent;
using System.Text;

namespace Orchestrator.Durable.CrashHost;

/// <summary>One execution of an activity, as recorded in the side-effect log.</summary>
/// <param name="Tag">Which worker ran it (the crashing host or the one that resumed).</param>
/// <param name="Activity">The activity name.</param>
/// <param name="IdempotencyKey">The task's <see cref="TaskActivityContext.IdempotencyKey"/>.</param>
public sealed record ActivityRun(string Tag, string Activity, string IdempotencyKey);

/// <summary>
/// The orchestrations and activities of the crash-safety tests, shared by the crash host process
/// and the in-process worker that resumes after the kill, so both run the same registry.
/// </summary>
/// <remarks>
/// Every activity execution appends one line to a side-effect log file before it returns, so the
/// test can count real executions, per worker. The log is the "side effect" whose repetition
/// at-least-once delivery allows or forbids.
/// </remarks>
public sealed class CrashWorkloads
{
    /// <summary>A sequence of <see cref="SequenceLength"/> activities; input a string, output the string with every step appended.</summary>
    public const string Sequence = "CrashSequence";

    /// <summary>
    /// A fan-out of <see cref="FanOutWidth"/> activities next to one sub-orchestration (<see cref="Child"/>,
    /// instance id <c>{parent}-child</c>); output <c>{sum of squares}|{child output}</c>.
    /// </summary>
    public const string FanOut = "CrashFanOut";

    /// <summary>The sub-orchestration of <see cref="FanOut"/>: a sequence of <see cref="ChildLength"/> steps.</summary>
    public const string Child = "CrashChild";

    /// <summary>Appends <c>+</c> to its input.</summary>
    public const string StepActivity = "CrashStep";

    /// <summary>Squares its input.</summary>
    public const string SquareActivity = "CrashSquare";

    /// <summary>Steps of <see cref="Sequence"/>.</summary>
    public const int SequenceLength = 5;

    /// <summary>Activities of <see cref="FanOut"/>.</summary>
    public const int FanOutWidth = 10;

    /// <summary>Steps of <see cref="Child"/>.</summary>
    public const int ChildLength = 2;

    private static readonly Task Never = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously).Task;

    private readonly Lock logGate = new();
    private readonly string logPath;
    private readonly string tag;
    private readonly ConcurrentDictionary<string, byte> finishing = new(StringComparer.Ordinal);
    private volatile bool frozen;

    /// <summary>Creates the workloads; <paramref name="tag"/> names this worker in the side-effect log.</summary>
    public CrashWorkloads(string sideEffectLogPath, string tag)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(sideEffectLogPath);
        if (string.IsNullOrWhiteSpace(tag) || tag.Contains('\t', StringComparison.Ordinal))
        {
            throw new ArgumentException("The tag must be non-empty and contain no tab.", nameof(tag));
        }

        this.logPath = sideEffectLogPath;
        this.tag = tag;
    }

    /// <summary>
    /// Called after an activity's side effect is logged and before it returns; the crash host uses it
    /// to block one activity mid-execution. Null: nothing.
    /// </summary>
    public Func<TaskActivityContext, Task>? AfterSideEffect { get; init; }

    /// <summary>
    /// Stops activities from starting: from now on an activity blocks forever before its side effect.
    /// The crash host freezes at the start of the checkpoint it will crash in, so the work that
    /// checkpoint dispatches is not run by the dying process (activities already past the gate
    /// finish normally; the tests account for those from the store).
    /// </summary>
    public void FreezeActivities() => this.frozen = true;

    /// <summary>
    /// True once, in the episode in which <paramref name="instanceId"/> returns from its orchestrator
    /// code (not on replay), i.e. in its last checkpoint. Consumes the mark.
    /// </summary>
    public bool TakeFinishingMark(string instanceId) => this.finishing.TryRemove(instanceId, out _);

    /// <summary>The registry of the test orchestrations and activities.</summary>
    public DurableTaskRegistry CreateRegistry() => new DurableTaskRegistry()
        .AddOrchestratorFunc<string, string>(Sequence, (ctx, input) => this.RunSequenceAsync(ctx, input, SequenceLength))
        .AddOrchestratorFunc<string, string>(Child, (ctx, input) => this.RunSequenceAsync(ctx, input, ChildLength))
        .AddOrchestratorFunc<int, string>(FanOut, this.RunFanOutAsync)
        .AddActivityFunc<string, string>(StepActivity, async (ctx, input) =>
        {
            await this.RecordSideEffectAsync(ctx).ConfigureAwait(false);
            return input + "+";
        })
        .AddActivityFunc<int, int>(SquareActivity, async (ctx, input) =>
        {
            await this.RecordSideEffectAsync(ctx).ConfigureAwait(false);
            return input * input;
        });

    /// <summary>The output of an uncrashed run of <see cref="Sequence"/>.</summary>
    public static string ExpectedSequenceOutput(string input) => ExpectedSteps(input, SequenceLength);

    /// <summary>The output of an uncrashed run of <see cref="FanOut"/>.</summary>
    public static string ExpectedFanOutOutput(int width) =>
        $"{Enumerable.Range(1, width).Sum(i => i * i)}|{ExpectedSteps("child", ChildLength)}";

    /// <summary>Reads the side-effect log; a missing file is an empty log.</summary>
    public static IReadOnlyList<ActivityRun> ReadLog(string path)
    {
        if (!File.Exists(path))
        {
            return [];
        }

        var runs = new List<ActivityRun>();
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        while (reader.ReadLine() is { } line)
        {
            string[] parts = line.Split('\t');
            if (parts.Length != 3)
            {
                throw new InvalidDataException($"Malformed side-effect log line: '{line}'.");
            }

            runs.Add(new ActivityRun(parts[0], parts[1], parts[2]));
        }

        return runs;
    }

    private static string ExpectedSteps(string input, int steps)
    {
        var sb = new StringBuilder(input);
        for (int i = 1; i <= steps; i++)
        {
            sb.Append('>').Append(i).Append('+');
        }

        return sb.ToString();
    }

    private async Task<string> RunSequenceAsync(TaskOrchestrationContext ctx, string input, int steps)
    {
        string acc = input;
        for (int i = 1; i <= steps; i++)
        {
            acc = await ctx.CallActivityAsync<string>(StepActivity, $"{acc}>{i}");
        }

        this.MarkFinishing(ctx);
        return acc;
    }

    private async Task<string> RunFanOutAsync(TaskOrchestrationContext ctx, int width)
    {
        var squares = new List<Task<int>>(width);
        for (int i = 1; i <= width; i++)
        {
            squares.Add(ctx.CallActivityAsync<int>(SquareActivity, i));
        }

        Task<string> child = ctx.CallSubOrchestratorAsync<string>(Child, "child", new SubOrchestrationOptions { InstanceId = ctx.InstanceId + "-child" });
        int[] results = await Task.WhenAll(squares);
        string childOutput = await child;
        this.MarkFinishing(ctx);
        return $"{results.Sum()}|{childOutput}";
    }

    // Test instrumentation, not orchestration logic: it only tells the crash host that this
    // episode is the instance's last one. Never on replay, so it fires in exactly one episode.
    private void MarkFinishing(TaskOrchestrationContext ctx)
    {
        if (!ctx.IsReplaying)
        {
            this.finishing[ctx.InstanceId] = 0;
        }
    }

    private async Task RecordSideEffectAsync(TaskActivityContext ctx)
    {
        if (this.frozen)
        {
            await Never.ConfigureAwait(false);
        }

        byte[] line = Encoding.UTF8.GetBytes($"{this.tag}\t{ctx.Name}\t{ctx.IdempotencyKey}\n");
        lock (this.logGate)
        {
            // One write of the whole line, flushed to the OS before the activity can return: a
            // process kill after this point cannot lose it.
            using var stream = new FileStream(this.logPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
            stream.Write(line);
            stream.Flush();
        }

        if (this.AfterSideEffect is { } after)
        {
            await after(ctx).ConfigureAwait(false);
        }
    }
}
