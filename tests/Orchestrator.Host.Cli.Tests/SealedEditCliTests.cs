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

    /// <param name="source">How the edit is given: inline, from a file, or on standard input (the last two keep the card number out of shell history and <c>ps</c>).</param>
    [Theory(Timeout = 90_000)]
    [InlineData("inline")]
    [InlineData("file")]
    [InlineData("stdin")]
    public async Task ApproveWithEdit_CardNumber_NoStoredRowHoldsItAndTheChargeGetsIt(string source)
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
                CliRun invalid = await RunWithEditAsync(definition, db, source, CardChargeAgent.EditedArguments("1234").ToJsonString(), "approve", name);
                Assert.Equal(1, invalid.ExitCode);
                Assert.Contains("card_number", invalid.Stderr, StringComparison.Ordinal);
                TurnStatus still = (await TurnConfirmations.GetStatusAsync(client, "t-edit", CancellationToken.None))!;
                Assert.Single(still.PendingConfirmations);
                Assert.Empty(still.Refusals);

                CliRun approve = await RunWithEditAsync(definition, db, source, CardChargeAgent.EditedArguments(EditedCard).ToJsonString(), "approve", name, "--by", "alice", "--json");
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

            // The edit file was the user's: it is left alone, and is the only file of the folder that may hold the number.
            File.Delete(Path.Combine(folder, EditFileName));

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

    [Fact]
    public async Task ApproveWithEdit_BadSource_ExitTwoBeforeOpeningAnything()
    {
        string folder = Directory.CreateTempSubdirectory("cli-edit-source-").FullName;
        string db = Path.Combine(folder, "orchestrator.db");
        string file = Path.Combine(folder, "edit.json");
        await File.WriteAllTextAsync(file, "{}");
        AgentDefinition agent = new CardChargeAgent().Definition();

        CliRun both = await RunAsync(agent, db, "approve", "t/call", "--edit", "{}", "--edit-file", file);
        CliRun missing = await RunAsync(agent, db, "approve", "t/call", "--edit-file", Path.Combine(folder, "missing.json"));
        CliRun emptyStdin = await RunAsync(agent, db, new StringReader("  \n"), "approve", "t/call", "--edit", "-");
        CliRun notJson = await RunAsync(agent, db, new StringReader("{\"card_number\":"), "approve", "t/call", "--edit", "-");
        CliRun tooLong = await RunAsync(agent, db, new StringReader(new string(' ', DecideCommand.MaxEditChars + 1) + "{}"), "approve", "t/call", "--edit", "-");
        CliRun reject = await RunAsync(agent, db, "reject", "t/call", "--edit-file", file);

        Assert.Equal((2, "--edit or --edit-file, not both"), (both.ExitCode, Find(both.Stderr, "--edit or --edit-file, not both")));
        Assert.Equal((2, "cannot read --edit-file"), (missing.ExitCode, Find(missing.Stderr, "cannot read --edit-file")));
        Assert.Equal((2, "(standard input) is empty"), (emptyStdin.ExitCode, Find(emptyStdin.Stderr, "(standard input) is empty")));
        Assert.Equal((2, "--edit is not JSON"), (notJson.ExitCode, Find(notJson.Stderr, "--edit is not JSON")));
        Assert.Equal((2, "is over"), (tooLong.ExitCode, Find(tooLong.Stderr, "is over")));
        Assert.Equal((2, "can only come with approve"), (reject.ExitCode, Find(reject.Stderr, "can only come with approve")));
        // Refused before the store was opened: nothing was created.
        Assert.False(File.Exists(db));
    }

    private const string EditFileName = "edit.json";

    private static string? Find(string text, string part) => text.Contains(part, StringComparison.Ordinal) ? part : text;

    /// <summary>Runs a command with the edit given as <paramref name="source"/> says: <c>--edit JSON</c>, <c>--edit-file</c> (a file beside the store) or <c>--edit -</c>.</summary>
    private static async Task<CliRun> RunWithEditAsync(AgentDefinition agent, string db, string source, string edit, params string[] args)
    {
        switch (source)
        {
            case "inline":
                return await RunAsync(agent, db, [.. args, "--edit", edit]);
            case "file":
                string file = Path.Combine(Path.GetDirectoryName(db)!, EditFileName);
                await File.WriteAllTextAsync(file, edit);
                return await RunAsync(agent, db, [.. args, "--edit-file", file]);
            default:
                return await RunAsync(agent, db, new StringReader(edit), [.. args, "--edit", "-"]);
        }
    }

    private static Task<CliRun> RunAsync(AgentDefinition agent, string db, params string[] args) => RunAsync(agent, db, null, args);

    private static async Task<CliRun> RunAsync(AgentDefinition agent, string db, TextReader? stdin, params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        CliContext context = CliHarness.Context(agent) with { Settings = new HostSettings(), Stdin = stdin };
        int code = await CommandLine.RunAsync([.. args, "--db", db], stdout, stderr, context, CancellationToken.None);
        return new CliRun(code, stdout.ToString(), stderr.ToString());
    }
}
