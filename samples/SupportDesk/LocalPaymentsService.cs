using Microsoft.AspNetCore.Builder;
using PaymentsService;

namespace SupportDesk;

/// <summary>
/// The sample payments service (samples/PaymentsService) started in this process on a free loopback port, with its
/// SQLite ledger in a file: what the demo and the end-to-end tests run the agent against when no payments service is
/// configured.
/// </summary>
public sealed class LocalPaymentsService : IAsyncDisposable
{
    private readonly WebApplication _app;

    private LocalPaymentsService(WebApplication app, string ledgerPath)
    {
        _app = app;
        LedgerPath = ledgerPath;
        BaseUrl = app.ListeningAddress();
        Client = new HttpClient { BaseAddress = BaseUrl, Timeout = TimeSpan.FromSeconds(30) };
    }

    /// <summary>Where it listens, for example <c>http://127.0.0.1:40123/</c>.</summary>
    public Uri BaseUrl { get; }

    /// <summary>A client on <see cref="BaseUrl"/>, disposed with the service.</summary>
    public HttpClient Client { get; }

    /// <summary>The SQLite ledger file.</summary>
    public string LedgerPath { get; }

    /// <summary>Starts the service with its ledger at <paramref name="ledgerPath"/> (created when absent).</summary>
    public static async Task<LocalPaymentsService> StartAsync(string ledgerPath, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(ledgerPath);
        string? dir = Path.GetDirectoryName(Path.GetFullPath(ledgerPath));
        if (dir is not null)
        {
            Directory.CreateDirectory(dir);
        }

        WebApplication app = PaymentsApp.Build(["--urls", "http://127.0.0.1:0", "--db", ledgerPath, "--Logging:LogLevel:Default", "Warning"]);
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        return new LocalPaymentsService(app, ledgerPath);
    }

    /// <summary>Stops the service.</summary>
    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _app.StopAsync(CancellationToken.None).ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}
