using System.Text.Json;
using Microsoft.Data.Sqlite;
using Orchestrator.Agents;
using Orchestrator.Durable.History;
using Orchestrator.Durable.Sqlite;
using SupportDesk;

namespace Orchestrator.Host.Tests;

public sealed class DemoCommandTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("demo-").FullName;

    private string Db => Path.Combine(this.dir, "orchestrator.db");

    private string LedgerDb => Path.Combine(this.dir, "orchestrator-payments.db");

    [Fact(Timeout = 180_000)]
    public async Task Demo_ApproveAll_RefundsExactlyOnceAndPrintsJsonSummaryLast()
    {
        var (code, lines) = await RunAsync("demo", "--approve", "all", "--json", "--db", this.Db);

        Assert.Equal(0, code);
        using JsonDocument json = JsonDocument.Parse(lines[^1]);
        JsonElement summary = json.RootElement;
        Assert.Equal("Completed", summary.GetProperty("status").GetString());
        Assert.Equal("Answered", summary.GetProperty("outcome").GetString());
        Assert.Equal(4, summary.GetProperty("toolCalls").GetInt32());
        Assert.Equal(1, summary.GetProperty("rejectedByValidation").GetInt32());
        Assert.Equal(1, summary.GetProperty("duplicatesPrevented").GetInt32());
        Assert.StartsWith("Your refund of $47.00 for order A8472", summary.GetProperty("reply").GetString(), StringComparison.Ordinal);

        // The numbers are what happened: the payments ledger holds the one refund, history the executions.
        var ledger = await ReadLedgerAsync();
        var refund = Assert.Single(ledger);
        Assert.Equal(("refund", "A8472", 47.00m), (refund.Kind, refund.OrderId, refund.Amount));
        Assert.Equal(ledger.Count, summary.GetProperty("effectsExecuted").GetInt32());
        var executed = await ExecutedToolCallsAsync(summary.GetProperty("instanceId").GetString()!);
        Assert.Equal(executed.Count, summary.GetProperty("toolExecutions").GetInt32());
        Assert.Equal(["lookup_order", "process_refund"], executed);

        // Each step is shown: the rejection, the card with exact arguments and hash, the key, the duplicate refused.
        Assert.Contains(lines, l => l.Contains("REJECTED by validation", StringComparison.Ordinal) && l.Contains("not an order id", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("Confirmation needed: Refund $47.00 for order A8472", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("""{"amount":47,"currency":"USD","order_id":"A8472","reason":"damaged"}""", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("hash       sha256:", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains($"Idempotency-Key {refund.IdempotencyKey}", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("DUPLICATE refused", StringComparison.Ordinal));
    }

    [Fact(Timeout = 180_000)]
    public async Task Demo_ApproveNone_CompletesWithoutAnyEffect()
    {
        var (code, lines) = await RunAsync("demo", "--approve", "none", "--json", "--db", this.Db);

        Assert.Equal(0, code);
        using JsonDocument json = JsonDocument.Parse(lines[^1]);
        JsonElement summary = json.RootElement;
        Assert.Equal("Completed", summary.GetProperty("status").GetString());
        Assert.Equal(0, summary.GetProperty("effectsExecuted").GetInt32());
        Assert.Equal(0, summary.GetProperty("duplicatesPrevented").GetInt32());
        Assert.Equal(1, summary.GetProperty("rejectedByValidation").GetInt32());
        Assert.Equal(1, summary.GetProperty("confirmationsRejected").GetInt32());
        Assert.Contains("did not approve", summary.GetProperty("reply").GetString(), StringComparison.Ordinal);
        Assert.Empty(await ReadLedgerAsync());
        Assert.Equal(["lookup_order"], await ExecutedToolCallsAsync(summary.GetProperty("instanceId").GetString()!));
    }

    [Fact(Timeout = 240_000)]
    public async Task Demo_RunTwiceOnOneDatabase_SecondRunCountsOnlyItsOwnEffects()
    {
        var (_, first) = await RunAsync("demo", "--approve", "all", "--json", "--db", this.Db);
        var (_, second) = await RunAsync("demo", "--approve", "all", "--json", "--db", this.Db);

        using JsonDocument a = JsonDocument.Parse(first[^1]);
        using JsonDocument b = JsonDocument.Parse(second[^1]);
        Assert.NotEqual(a.RootElement.GetProperty("instanceId").GetString(), b.RootElement.GetProperty("instanceId").GetString());
        Assert.Equal(1, b.RootElement.GetProperty("effectsExecuted").GetInt32());
        Assert.Equal(1, b.RootElement.GetProperty("duplicatesPrevented").GetInt32());

        // The ledger keeps both conversations' refunds, each under its own key.
        var ledger = await ReadLedgerAsync();
        Assert.Equal(2, ledger.Count);
        Assert.Equal(2, ledger.Select(e => e.IdempotencyKey).Distinct().Count());
    }

    [Fact]
    public void DemoOptions_Telemetry_OnlyWhenAsked()
    {
        Assert.True(DemoOptions.Parse(["--approve", "all", "--telemetry", "--json"]).Telemetry);
        Assert.False(DemoOptions.Parse(["--approve", "all", "--json"]).Telemetry);
    }

    [Theory(Timeout = 30_000)]
    [InlineData("demo", "--approve", "maybe")]
    [InlineData("demo", "--bogus")]
    [InlineData("frobnicate")]
    public async Task CommandLine_BadArguments_ExitCode2WithMessage(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();

        int code = await CommandLine.RunAsync(args, stdout, stderr, CancellationToken.None);

        Assert.Equal(2, code);
        Assert.False(string.IsNullOrWhiteSpace(stderr.ToString()));
        Assert.Empty(Directory.EnumerateFileSystemEntries(this.dir));
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(this.dir, recursive: true);
    }

    private static async Task<(int Code, string[] Lines)> RunAsync(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = await CommandLine.RunAsync(args, stdout, stderr, CancellationToken.None);
        Assert.True(code == 0, $"exit {code}: {stderr}\n{stdout}");
        return (code, stdout.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }

    /// <summary>The payments ledger the demo wrote, read through the payments service itself.</summary>
    private async Task<IReadOnlyList<LedgerEffect>> ReadLedgerAsync()
    {
        await using var payments = await LocalPaymentsService.StartAsync(this.LedgerDb, CancellationToken.None);
        return await PaymentsLedger.ReadAsync(payments.Client, CancellationToken.None);
    }

    /// <summary>The tools the turn executed, from its recorded history in the demo's database.</summary>
    private async Task<List<string>> ExecutedToolCallsAsync(string turnId)
    {
        await using var backend = new SqliteOrchestrationBackend(new SqliteOrchestrationBackendOptions { DataSource = this.Db });
        var history = await new Orchestrator.Durable.Client.DurableTaskClient(backend).GetHistoryAsync(turnId);
        return [.. history.OfType<TaskScheduledEvent>()
            .Where(e => e.Name == TurnRegistration.ExecuteToolActivity)
            .Select(e => JsonDocument.Parse(e.Input!).RootElement.GetProperty("toolName").GetString()!)];
    }
}
