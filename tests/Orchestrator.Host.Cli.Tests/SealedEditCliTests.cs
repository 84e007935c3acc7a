using System.Text.Json;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;
using Orchestrator.Agents;
using Orchestrator.Agents.Models;
using Orchestrator.Durable;
using Orchestrator.Durable.Client;
using Orchestrator.Durable.Sqlite;
using Orchestrator.Durable.Worker;
using Orchestrator.Host.Cli;

namespace Orchestrator.Host.Cli.Tests;

/// <summary>
/// <c>approve --edit</c> on a SQLite store whose worker is registered as the host registers it (the generated key beside
/// the database): the edit is validated, its card number sealed before it is raised, and the charge runs with it.
/// </summary>
public sealed class SealedEditCliTests
{
    private const string EditedCard = "5555555555554444";

    [Fact(Timeout = 90_000)]
    public async Task ApproveWithEdit_CardNumber_NoStoredRowHoldsItAndTheChargeGetsIt()
    {
        string folder = Directory.CreateTempSubdirectory("cli-sealed-edit-").FullName;
        string db = Path.Combine(folder, "orchestrator.db");
        var agent = new CardChargeAgent();
        AgentDefinition definition = agent.Definition();
        try
        {
            await using (var backend = new SqliteOrchestrationBackend(new SqliteOrchestrationBackendOptions { DataSource = db }))
            {
                AgentTurnOptions options = HostTurnOptions.Create(new HostSettings(), NullLoggerFactory.Instance, db);
                Assert.NotNull(options.SensitiveValues);
                using var journal = (IDisposable)options.CallJournal!;
                await using var worker = new DurableTaskWorker(
                    backend,
                    new DurableTaskRegistry().AddAgentTurn(definition.Tools, definition.Handlers, definition.Model, options),
                    new DurableTaskWorkerOptions { MaxPollingInterval = TimeSpan.FromMilliseconds(50) });
                await worker.StartAsync(CancellationToken.None);
                var client = new DurableTaskClient(backend);
                await client.ScheduleNewOrchestrationInstanceAsync(
                    TurnRegistration.TurnOrchestrator,
                    new TurnInput("conv-edit", [ModelMessage.User("charge my card for order A8473")]),
                    new StartOrchestrationOptions { InstanceId = "t-edit" });
                await Eventually.TrueAsync(
                    async () => (await TurnConfirmations.GetStatusAsync(client, "t-edit", CancellationToken.None)) is { PendingConfirmations.Count: 1 },
                    "the charge waits for a person");
                string name = $"t-edit/{CardChargeAgent.ChargeCallId}";

                // An invalid edit (not a card number) is refused with the validation's reason, and nothing is sent.
                CliRun invalid = await RunAsync(definition, db, "approve", name, "--edit", CardChargeAgent.EditedArguments("1234").ToJsonString());
                Assert.Equal(1, invalid.ExitCode);
                Assert.Contains("card_number", invalid.Stderr, StringComparison.Ordinal);
                TurnStatus still = (await TurnConfirmations.GetStatusAsync(client, "t-edit", CancellationToken.None))!;
                Assert.Single(still.PendingConfirmations);
                Assert.Empty(still.Refusals);

                CliRun approve = await RunAsync(definition, db, "approve", name, "--edit", CardChargeAgent.EditedArguments(EditedCard).ToJsonString(), "--by", "alice", "--json");
                Assert.True(approve.ExitCode == 0, approve.ToString());
                using (JsonDocument printed = JsonDocument.Parse(approve.Stdout))
                {
                    Assert.Equal("accepted", printed.RootElement.GetProperty("result").GetString());
                    Assert.Contains("[REDACTED", printed.RootElement.GetProperty("editedArguments").GetString(), StringComparison.Ordinal);
                }

                Assert.DoesNotContain(EditedCard, approve.Stdout + approve.Stderr, StringComparison.Ordinal);
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                OrchestrationMetadata done = await client.WaitForInstanceCompletionAsync("t-edit", cts.Token);
                Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
                Assert.Equal("alice", Assert.Single(done.ReadCustomStatusAs<TurnStatus>()!.Decided).DecidedBy);
            }

            // The charge ran once, with the edited number in the clear; no row of any file of the store holds it.
            Assert.Equal([CardChargeAgent.CanonicalCharge(EditedCard)], agent.Charges);
            var (rows, sealedSeen, leaks) = SqliteStoreScan.Scan(folder, EditedCard, CardChargeAgent.ProposedCard);
            Assert.True(rows > 10, $"only {rows} rows scanned");
            Assert.True(sealedSeen, "no sealed value found: the scan does not see the history");
            Assert.Empty(leaks);
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public async Task RejectWithEdit_Refused_ExitTwoBeforeOpeningAnything()
    {
        CliRun run = await RunAsync(new CardChargeAgent().Definition(), Path.Combine(Path.GetTempPath(), "no-such-store.db"), "reject", "t/call", "--edit", "{}");

        Assert.Equal(2, run.ExitCode);
        Assert.Contains("--edit can only come with approve", run.Stderr, StringComparison.Ordinal);
    }

    private static async Task<CliRun> RunAsync(AgentDefinition agent, string db, params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        CliContext context = CliHarness.Context(agent) with { Settings = new HostSettings() };
        int code = await CommandLine.RunAsync([.. args, "--db", db], stdout, stderr, context, CancellationToken.None);
        return new CliRun(code, stdout.ToString(), stderr.ToString());
    }
}
