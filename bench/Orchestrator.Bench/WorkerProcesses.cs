using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Orchestrator.Durable.AzureStorage;
using Orchestrator.Durable.Worker;

namespace Orchestrator.Bench;

/// <summary>
/// Extra worker processes for <c>--workers N</c>: the bench executable re-launched as
/// <c>worker --task-hub NAME</c>, with the connection string in AZURITE_CONNECTION_STRING. A worker
/// prints <c>ready</c> once started, answers each <c>count</c> line on stdin with its storage request
/// count, and stops when stdin closes (so it also stops if the bench dies).
/// </summary>
internal sealed class WorkerProcesses : IDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(120);
    private readonly List<Process> processes = [];

    public int Count => this.processes.Count;

    public static async Task<WorkerProcesses> StartAsync(int count, string connectionString, string taskHub, BenchOptions options, CancellationToken cancellationToken)
    {
        var result = new WorkerProcesses();
        try
        {
            string self = Environment.ProcessPath ?? throw new InvalidOperationException("The bench's executable path is unknown.");
            for (int i = 0; i < count; i++)
            {
                var psi = new ProcessStartInfo(self)
                {
                    UseShellExecute = false,
                    RedirectStandardInput = true,
                    RedirectStandardOutput = true,
                    RedirectStandardError = false,
                };
                if (string.Equals(Path.GetFileNameWithoutExtension(self), "dotnet", StringComparison.OrdinalIgnoreCase))
                {
                    psi.ArgumentList.Add(typeof(WorkerProcesses).Assembly.Location);
                }

                psi.ArgumentList.Add("worker");
                psi.ArgumentList.Add("--task-hub");
                psi.ArgumentList.Add(taskHub);
                AddOption(psi, "--max-orchestrations", options.MaxConcurrentOrchestrations);
                AddOption(psi, "--max-activities", options.MaxConcurrentActivities);
                AddOption(psi, "--dispatchers", options.DispatcherCount);
                psi.Environment["AZURITE_CONNECTION_STRING"] = connectionString;
                result.processes.Add(Process.Start(psi) ?? throw new InvalidOperationException("A worker process did not start."));
            }

            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(StartTimeout);
            foreach (Process p in result.processes)
            {
                string? line = await p.StandardOutput.ReadLineAsync(timeout.Token).ConfigureAwait(false);
                if (line != "ready")
                {
                    throw new BenchFailedException($"worker process {p.Id} did not start (it said '{line ?? "<end of output>"}').");
                }
            }

            return result;
        }
        catch
        {
            result.Dispose();
            throw;
        }
    }

    /// <summary>The sum of the worker processes' storage request counts.</summary>
    public async Task<long> StorageOperationCountAsync(CancellationToken cancellationToken)
    {
        long sum = 0;
        foreach (Process p in this.processes)
        {
            await p.StandardInput.WriteLineAsync("count".AsMemory(), cancellationToken).ConfigureAwait(false);
            await p.StandardInput.FlushAsync(cancellationToken).ConfigureAwait(false);
            string? line = await p.StandardOutput.ReadLineAsync(cancellationToken).ConfigureAwait(false);
            sum += long.Parse(line ?? throw new BenchFailedException($"worker process {p.Id} ended"), CultureInfo.InvariantCulture);
        }

        return sum;
    }

    public void Dispose()
    {
        foreach (Process p in this.processes)
        {
            try
            {
                p.StandardInput.Close();
            }
            catch (IOException)
            {
                // Already gone.
            }
        }

        foreach (Process p in this.processes)
        {
            if (!p.WaitForExit(15_000))
            {
                p.Kill(entireProcessTree: true);
                p.WaitForExit(5_000);
            }

            p.Dispose();
        }

        this.processes.Clear();
    }

    /// <summary>The <c>worker</c> mode: one worker on the hub until stdin closes.</summary>
    public static async Task<int> RunWorkerAsync(string[] args)
    {
        string? hub = null;
        int? maxOrch = null, maxAct = null, dispatchers = null;
        for (int i = 1; i + 1 < args.Length; i += 2)
        {
            string v = args[i + 1];
            switch (args[i])
            {
                case "--task-hub": hub = v; break;
                case "--max-orchestrations": maxOrch = int.Parse(v, CultureInfo.InvariantCulture); break;
                case "--max-activities": maxAct = int.Parse(v, CultureInfo.InvariantCulture); break;
                case "--dispatchers": dispatchers = int.Parse(v, CultureInfo.InvariantCulture); break;
                default: throw new UsageException($"worker: unknown option '{args[i]}'.");
            }
        }

        string cs = Environment.GetEnvironmentVariable("AZURITE_CONNECTION_STRING") ?? throw new UsageException("worker: AZURITE_CONNECTION_STRING is not set.");
        using ILoggerFactory loggerFactory = LoggerFactory.Create(b => b
            .SetMinimumLevel(LogLevel.Warning)
            .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace));
        var backend = new AzureStorageOrchestrationBackend(new AzureStorageOrchestrationBackendOptions
        {
            ConnectionString = cs,
            TaskHubName = hub ?? throw new UsageException("worker: --task-hub is required."),
            LoggerFactory = loggerFactory,
        });
        await using (backend.ConfigureAwait(false))
        {
            var workerOptions = new DurableTaskWorkerOptions();
            workerOptions = workerOptions with
            {
                MaxConcurrentOrchestrations = maxOrch ?? workerOptions.MaxConcurrentOrchestrations,
                MaxConcurrentActivities = maxAct ?? workerOptions.MaxConcurrentActivities,
                DispatcherCount = dispatchers ?? workerOptions.DispatcherCount,
            };
            var worker = new DurableTaskWorker(backend, Workloads.CreateRegistry(), workerOptions, loggerFactory);
            await using (worker.ConfigureAwait(false))
            {
                await worker.StartAsync(CancellationToken.None).ConfigureAwait(false);
                Console.Out.WriteLine("ready");
                Console.Out.Flush();
                while (await Console.In.ReadLineAsync().ConfigureAwait(false) is { } line)
                {
                    if (line == "count")
                    {
                        Console.Out.WriteLine(backend.StorageOperationCount.ToString(CultureInfo.InvariantCulture));
                        Console.Out.Flush();
                    }
                }

                await worker.StopAsync(CancellationToken.None).ConfigureAwait(false);
            }
        }

        return 0;
    }

    private static void AddOption(ProcessStartInfo psi, string name, int? value)
    {
        if (value is { } v)
        {
            psi.ArgumentList.Add(name);
            psi.ArgumentList.Add(v.ToString(CultureInfo.InvariantCulture));
        }
    }
}
