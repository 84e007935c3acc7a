using System.Collections.Concurrent;
using System.Diagnostics;
using Orchestrator.Durable.Client;
using Xunit.Abstractions;

namespace Orchestrator.Durable.AzureStorage.Tests;

/// <summary>Several worker processes on one hub; one is killed mid-run and the others finish its work.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class MultiProcessTests(AzuriteFixture azurite, ITestOutputHelper output)
{
    [Fact(Timeout = 180_000)]
    public async Task ThreeWorkerProcesses_OneKilledMidRun_AllInstancesComplete()
    {
        string hub = AzuriteFixture.NewHubName("procs");
        var hosts = new List<HostProcess>();
        try
        {
            for (int i = 0; i < 3; i++)
            {
                hosts.Add(HostProcess.Start(azurite.ConnectionString, hub, $"proc{i}"));
            }

            await Task.WhenAll(hosts.Select(h => h.Ready.WaitAsync(TimeSpan.FromSeconds(60))));
            await using var backend = new AzureStorageOrchestrationBackend(TestHost.Options(azurite, hub));
            await backend.CreateIfNotExistsAsync(default);
            var client = new DurableTaskClient(backend);
            var ids = new List<string>();
            for (int i = 0; i < 24; i++)
            {
                ids.Add(await client.ScheduleNewOrchestrationInstanceAsync("Chain", i * 100));
            }

            // Kill a worker once work is well under way (some finished, some not).
            await TestWait.EventuallyAsync(
                async () => (await client.QueryInstancesAsync(new Backend.InstanceQuery { Statuses = [OrchestrationRuntimeStatus.Completed] })).Count >= 3,
                TimeSpan.FromSeconds(60));
            // The victim is the process holding the most partitions, so its death strands work.
            var owners = new Dictionary<string, int>();
            await foreach (Azure.Data.Tables.TableEntity e in backend.LeasesTable.QueryAsync<Azure.Data.Tables.TableEntity>("PartitionKey eq 'lease'"))
            {
                string owner = e.GetString("Owner") ?? string.Empty;
                owners[owner] = owners.GetValueOrDefault(owner) + 1;
            }

            HostProcess victim = hosts.OrderByDescending(h => owners.GetValueOrDefault(h.WorkerId)).First();
            Assert.True(owners.GetValueOrDefault(victim.WorkerId) >= 1, "no worker held a partition");
            int unfinished = (await client.QueryInstancesAsync(new Backend.InstanceQuery { Statuses = [OrchestrationRuntimeStatus.Running, OrchestrationRuntimeStatus.Pending] })).Count;
            var sw = Stopwatch.StartNew();
            victim.Kill();
            output.WriteLine($"killed {victim.WorkerId} holding {owners[victim.WorkerId]} partitions; {unfinished} instances unfinished");

            try
            {
                await TestWait.EventuallyAsync(
                    async () => (await client.QueryInstancesAsync(new Backend.InstanceQuery { Statuses = [OrchestrationRuntimeStatus.Completed] })).Count == ids.Count,
                    TimeSpan.FromSeconds(60));
            }
            catch (TimeoutException)
            {
                await this.DumpAsync(backend, ids);
                throw;
            }

            foreach ((string id, int i) in ids.Select((id, i) => (id, i)))
            {
                OrchestrationMetadata m = await TestWait.CompletionAsync(client, id, TimeSpan.FromSeconds(10));
                Assert.Equal(OrchestrationRuntimeStatus.Completed, m.RuntimeStatus);
                Assert.Equal((i * 100) + 5, m.ReadOutputAs<int>());
            }

            output.WriteLine($"all complete {sw.Elapsed.TotalSeconds:F1} s after the kill");
        }
        finally
        {
            foreach (HostProcess h in hosts)
            {
                h.Stop();
                output.WriteLine($"{h.WorkerId}: {h.Log}");
            }
        }
    }

    private async Task DumpAsync(AzureStorageOrchestrationBackend backend, List<string> ids)
    {
        foreach (string id in ids)
        {
            OrchestrationMetadata? m = await backend.GetInstanceAsync(id, default);
            if (m!.RuntimeStatus == OrchestrationRuntimeStatus.Completed)
            {
                continue;
            }

            var rows = new List<string>();
            await foreach (Azure.Data.Tables.TableEntity e in backend.HistoryTable.QueryAsync<Azure.Data.Tables.TableEntity>($"PartitionKey eq '{id}'"))
            {
                rows.Add(e.RowKey + (e.RowKey == "~sentinel" ? $"(pending={e.GetInt32("PendingActivities")}, status={e.GetString("Status")}, next={e.GetInt32("NextSeq")})" : string.Empty));
            }

            var history = await backend.GetHistoryAsync(id, default);
            output.WriteLine($"{id} p{backend.PartitionOf(id)} {m.RuntimeStatus} {m.FailureDetails?.ErrorMessage}: rows [{string.Join(", ", rows)}] history [{string.Join(", ", history!.Select(h => h.EventType + (h.EventId >= 0 ? "#" + h.EventId : string.Empty)))}]");
        }

        for (int p = 0; p < backend.Options.PartitionCount; p++)
        {
            var props = await backend.ControlQueueFor(Enumerable.Range(0, 1000).Select(i => "x" + i).First(x => backend.PartitionOf(x) == p)).GetPropertiesAsync();
            output.WriteLine($"control queue {p}: ~{props.Value.ApproximateMessagesCount} messages");
        }

        await foreach (Azure.Data.Tables.TableEntity e in backend.LeasesTable.QueryAsync<Azure.Data.Tables.TableEntity>())
        {
            output.WriteLine($"lease row {e.PartitionKey}/{e.RowKey}: owner {e.GetString("Owner")} expires {e.GetDateTimeOffset("ExpiresAt")}");
        }
    }

    private sealed class HostProcess
    {
        private readonly Process process;
        private readonly TaskCompletionSource ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly ConcurrentQueue<string> lines = new();

        private HostProcess(Process process, string workerId)
        {
            this.process = process;
            this.WorkerId = workerId;
        }

        public string WorkerId { get; }

        public Task Ready => this.ready.Task;

        public string Log => string.Join(" | ", this.lines.TakeLast(5));

        public static HostProcess Start(string connectionString, string hub, string workerId)
        {
            string dll = Path.Combine(CrashHostDirectory(), "Orchestrator.Durable.AzureStorage.CrashHost.dll");
            var psi = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
            {
                UseShellExecute = false,
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            psi.ArgumentList.Add(dll);
            psi.ArgumentList.Add(connectionString);
            psi.ArgumentList.Add(hub);
            psi.ArgumentList.Add(workerId);
            var p = Process.Start(psi) ?? throw new InvalidOperationException("The crash host did not start.");
            var host = new HostProcess(p, workerId);
            p.OutputDataReceived += (_, e) =>
            {
                if (e.Data is null)
                {
                    return;
                }

                host.lines.Enqueue(e.Data);
                if (e.Data.StartsWith("ready", StringComparison.Ordinal))
                {
                    host.ready.TrySetResult();
                }
            };
            p.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is not null)
                {
                    host.lines.Enqueue("err: " + e.Data);
                }
            };
            p.BeginOutputReadLine();
            p.BeginErrorReadLine();
            return host;
        }

        public void Kill()
        {
            this.process.Kill(entireProcessTree: true);
            this.process.WaitForExit(10_000);
        }

        public void Stop()
        {
            if (!this.process.HasExited)
            {
                this.process.StandardInput.Close();
                if (!this.process.WaitForExit(15_000))
                {
                    this.process.Kill(entireProcessTree: true);
                }
            }

            if (this.process.WaitForExit(5_000))
            {
                this.process.WaitForExit(); // drains the redirected output
            }

            this.process.Dispose();
        }

        private static string CrashHostDirectory()
        {
            // tests/Orchestrator.Durable.AzureStorage.Tests/bin/<Configuration>/<tfm>/ -> the crash host's matching folder.
            var here = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
            string tfm = here.Name;
            string configuration = here.Parent!.Name;
            DirectoryInfo testsDir = here.Parent!.Parent!.Parent!.Parent!;
            return Path.Combine(testsDir.FullName, "Orchestrator.Durable.AzureStorage.CrashHost", "bin", configuration, tfm);
        }
    }
}
