using System.Text.Json;
using Orchestrator.Bench;

// Exit codes: 0 measured, 1 the run failed (an orchestration failed, timeout), 2 bad command line.
if (args is ["--help"] or ["-h"])
{
    Console.Out.WriteLine(BenchOptions.Usage);
    return 0;
}

if (args is ["worker", ..])
{
    try
    {
        return await WorkerProcesses.RunWorkerAsync(args);
    }
    catch (UsageException ex)
    {
        Console.Error.WriteLine($"error: {ex.Message}");
        return 2;
    }
}

BenchOptions options;
try
{
    options = BenchOptions.Parse(args);
}
catch (UsageException ex)
{
    Console.Error.WriteLine($"error: {ex.Message}");
    Console.Error.WriteLine();
    Console.Error.WriteLine(BenchOptions.Usage);
    return 2;
}

using var cts = new CancellationTokenSource(options.Timeout);
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cts.Cancel();
};

try
{
    Dictionary<string, object?> result = options.IsTurnWorkload
        ? await new TurnBenchRunner(options).RunAsync(cts.Token)
        : options.Workload == "query"
            ? await new QueryBenchRunner(options).RunAsync(cts.Token)
            : await new BenchRunner(options).RunAsync(cts.Token);
    Console.Out.WriteLine(JsonSerializer.Serialize(result));
    return 0;
}
catch (OperationCanceledException) when (cts.IsCancellationRequested)
{
    Console.Error.WriteLine($"error: the {options.Workload} run did not finish within {options.Timeout.TotalSeconds:0} s (or was interrupted).");
    return 1;
}
catch (BenchFailedException ex)
{
    Console.Error.WriteLine($"error: {ex.Message}");
    return 1;
}
