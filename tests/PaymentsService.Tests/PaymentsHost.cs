using Microsoft.AspNetCore.Builder;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace PaymentsService.Tests;

/// <summary>The payments service on a real Kestrel on 127.0.0.1 (a free port), with its own ledger file.</summary>
internal sealed class PaymentsHost : IAsyncDisposable
{
    private readonly WebApplication _app;

    private PaymentsHost(WebApplication app, string dbPath)
    {
        _app = app;
        DbPath = dbPath;
        Client = new HttpClient { BaseAddress = app.ListeningAddress(), Timeout = TimeSpan.FromSeconds(20) };
    }

    public HttpClient Client { get; }

    public string DbPath { get; }

    public static async Task<PaymentsHost> StartAsync(IPaymentProcessor? processor = null, TimeProvider? time = null)
    {
        string db = Path.Combine(Path.GetTempPath(), $"payments-test-{Environment.ProcessId}-{Interlocked.Increment(ref s_counter)}.db");
        WebApplication app = PaymentsApp.Build(["--urls", "http://127.0.0.1:0", "--db", db, "--Logging:LogLevel:Default", "Warning"], services =>
        {
            if (processor is not null)
            {
                services.Replace(ServiceDescriptor.Singleton(processor));
            }

            if (time is not null)
            {
                services.Replace(ServiceDescriptor.Singleton(time));
            }
        });
        await app.StartAsync();
        return new PaymentsHost(app, db);
    }

    private static int s_counter;

    public Task<HttpResponseMessage> PostAsync(string path, string? key, string json)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        if (key is not null)
        {
            request.Headers.Add("Idempotency-Key", key);
        }

        return Client.SendAsync(request);
    }

    public async Task<JsonElement[]> LedgerAsync(string? orderId = null)
    {
        string json = await Client.GetStringAsync(orderId is null ? "/ledger" : $"/ledger?order_id={Uri.EscapeDataString(orderId)}");
        using JsonDocument doc = JsonDocument.Parse(json);
        return [.. doc.RootElement.GetProperty("entries").EnumerateArray().Select(e => e.Clone())];
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        SqliteConnection.ClearAllPools();
        foreach (string suffix in new[] { string.Empty, "-wal", "-shm" })
        {
            File.Delete(DbPath + suffix);
        }
    }
}

/// <summary>A card network whose calls wait until the test lets them go; counts calls.</summary>
internal sealed class GatedProcessor : IPaymentProcessor
{
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _entered = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _calls;

    /// <summary>When set, only the first call waits at the gate; later calls pass at once.</summary>
    public bool OnlyFirstWaits { get; init; }

    public int Calls => Volatile.Read(ref _calls);

    public Task Entered => _entered.Task;

    public void Release() => _release.TrySetResult();

    public async Task<ProcessorOutcome> ProcessAsync(PaymentKind kind, PaymentRequest request, string idempotencyKey, CancellationToken cancellationToken)
    {
        int n = Interlocked.Increment(ref _calls);
        _entered.TrySetResult();
        if (n == 1 || !OnlyFirstWaits)
        {
            await _release.Task.WaitAsync(TimeSpan.FromSeconds(20), cancellationToken);
        }

        return new ProcessorOutcome(true);
    }
}

/// <summary>A card network that fails its first call with an exception (no effect), then approves.</summary>
internal sealed class FailOnceProcessor : IPaymentProcessor
{
    private int _calls;

    public int Calls => Volatile.Read(ref _calls);

    public Task<ProcessorOutcome> ProcessAsync(PaymentKind kind, PaymentRequest request, string idempotencyKey, CancellationToken cancellationToken) =>
        Interlocked.Increment(ref _calls) == 1
            ? throw new HttpRequestException("card network unreachable")
            : Task.FromResult(new ProcessorOutcome(true));
}
