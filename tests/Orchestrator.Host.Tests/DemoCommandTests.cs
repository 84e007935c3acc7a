using System.Text.Json;

namespace Orchestrator.Host.Tests;

public sealed class DemoCommandTests : IDisposable
{
    private readonly string db = Path.Combine(Path.GetTempPath(), $"demo-{Environment.ProcessId}-{Environment.TickCount64}.db");

    [Fact(Timeout = 120_000)]
    public async Task Demo_ApproveAll_RefundsExactlyOnceAndPrintsJsonSummaryLast()
    {
        var (code, lines) = await RunAsync("demo", "--approve", "all", "--json", "--db", this.db);

        Assert.Equal(0, code);
        using JsonDocument summary = JsonDocument.Parse(lines[^1]);
        Assert.Equal("Completed", summary.RootElement.GetProperty("status").GetString());
        Assert.Equal(1, summary.RootElement.GetProperty("effectsExecuted").GetInt32());
        Assert.Contains("refunded 47.00 for A8472", summary.RootElement.GetProperty("output").GetString());
        Assert.Contains(lines, l => l.Contains("Refund $47.00 for A8472", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("Idempotency-Key", StringComparison.Ordinal));
    }

    [Fact(Timeout = 120_000)]
    public async Task Demo_ApproveNone_CompletesWithoutAnyEffect()
    {
        var (code, lines) = await RunAsync("demo", "--approve", "none", "--json", "--db", this.db);

        Assert.Equal(0, code);
        using JsonDocument summary = JsonDocument.Parse(lines[^1]);
        Assert.Equal(0, summary.RootElement.GetProperty("effectsExecuted").GetInt32());
        Assert.Contains("rejected", summary.RootElement.GetProperty("output").GetString());
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
        Assert.False(File.Exists(this.db));
    }

    public void Dispose()
    {
        foreach (string f in new[] { this.db, this.db + "-wal", this.db + "-shm" })
        {
            File.Delete(f);
        }
    }

    private static async Task<(int Code, string[] Lines)> RunAsync(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = await CommandLine.RunAsync(args, stdout, stderr, CancellationToken.None);
        return (code, stdout.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }
}
