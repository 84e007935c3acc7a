using Orchestrator.Durable.CrashHost;
using Orchestrator.Durable.Sqlite;
using Orchestrator.Durable.Worker;

// A worker process for the crash-safety tests. Usage:
//   Orchestrator.Durable.CrashHost --db <file> --log <side-effect log> [--tag <name>]
//       [--crash-stage BeforeCommit|AfterCommit|AfterDispatch|AfterCheckpoint --crash-at <n>|last [--crash-instance <id>]]
//       [--block-instance <id> --block-task <task id>] [--free-running true]
// Crash: in the n-th checkpoint of --crash-instance (of any instance if omitted), or in its last
// one ("last": the episode in which the orchestrator returns), at the given stage, the host prints
// "CRASH-POINT <stage> <n>", flushes and blocks forever, for the test to kill the process.
// Block: the activity with that task id of that instance logs its side effect, prints
// "ACTIVITY-BLOCKED <idempotency key>" and blocks forever.
// By default the host runs one episode at a time and starts no activity once the crashing
// checkpoint has begun, so the state at the kill is exactly known; with --free-running true it
// runs at full concurrency and keeps working on everything else until it is killed.
// The backend writes each checkpoint in three transactions (its default, the protocol Azure
// Storage runs too), except with --crash-stage AfterCheckpoint: that stage follows the one
// transaction of CheckpointInOneTransaction, which the host then turns on. AfterCommit and
// AfterDispatch exist only between the three.
// Without crash or block arguments it just works. In every case it exits when stdin closes,
// so a host whose test runner died does not linger.
HostArguments a;
try
{
    a = HostArguments.Parse(args);
}
catch (ArgumentException ex)
{
    await Console.Error.WriteLineAsync(ex.Message);
    return 2;
}

var stdout = Console.Out;
object stdoutGate = new();
void Say(string line)
{
    lock (stdoutGate)
    {
        stdout.WriteLine(line);
        stdout.Flush();
    }
}

void BlockForever()
{
    using var never = new ManualResetEventSlim(false);
    never.Wait();
}

var workloads = new CrashWorkloads(a.LogPath, a.Tag)
{
    AfterSideEffect = a.BlockTaskId is not int blockTask ? null : ctx =>
    {
        if (ctx.TaskId == blockTask && (a.BlockInstanceId is null || ctx.InstanceId == a.BlockInstanceId))
        {
            Say($"ACTIVITY-BLOCKED {ctx.IdempotencyKey}");
            BlockForever();
        }

        return Task.CompletedTask;
    },
};

int checkpoints = 0;
bool crashing = false;
object hookGate = new();
void OnCheckpointStage(CheckpointStage stage, string instanceId)
{
    if (a.CrashStage is not CheckpointStage crashStage || (a.CrashInstanceId is not null && instanceId != a.CrashInstanceId))
    {
        return;
    }

    bool crashNow;
    lock (hookGate)
    {
        if (stage == CheckpointStage.BeforeCommit && !crashing)
        {
            checkpoints++;
            bool finishing = workloads.TakeFinishingMark(instanceId);
            if (a.CrashAtLast ? finishing : checkpoints == a.CrashAt)
            {
                crashing = true;
                if (!a.FreeRunning)
                {
                    // From here on this process does no more activity work, so what the crashing
                    // checkpoint dispatches is first run after the restart, as if the kill came
                    // before it was fetched.
                    workloads.FreezeActivities();
                }
            }
        }

        crashNow = crashing && stage == crashStage;
    }

    if (crashNow)
    {
        Say($"CRASH-POINT {stage} {checkpoints}");
        BlockForever();
    }
}

using var loggerFactory = new StderrLoggerFactory(a.Tag);
await using var backend = new SqliteOrchestrationBackend(new SqliteOrchestrationBackendOptions
{
    DataSource = a.DbPath,
    CheckpointInOneTransaction = a.CrashStage == CheckpointStage.AfterCheckpoint,
});
await using var worker = new DurableTaskWorker(
    backend,
    workloads.CreateRegistry(),
    CrashHostDefaults.WorkerOptions($"{a.Tag}:{Environment.ProcessId}") with
    {
        // By default one episode at a time: while the crashing episode is blocked nothing else is
        // orchestrated here.
        MaxConcurrentOrchestrations = a.FreeRunning ? 10 * Environment.ProcessorCount : 1,
        OnCheckpointStage = OnCheckpointStage,
    },
    loggerFactory);

var stdinClosed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
var stdinWatcher = new Thread(() =>
{
    try
    {
        while (Console.In.ReadLine() is not null)
        {
        }
    }
    catch (IOException)
    {
        // Treated like end of input.
    }

    stdinClosed.TrySetResult();
})
{ IsBackground = true, Name = "stdin-watcher" };

await worker.StartAsync(CancellationToken.None);
stdinWatcher.Start();
Say("READY");
await stdinClosed.Task;
if (crashing || a.BlockTaskId is not null)
{
    // Work may be blocked on purpose; a graceful stop (here or when disposing) would wait for it
    // forever, so leave at once, like the kill this stands in for.
    Environment.Exit(3);
}

using var stopTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
await worker.StopAsync(stopTimeout.Token);
return 0;
