using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace PaymentsService;

/// <summary>Builds the payments service; the process entry point and the tests share it.</summary>
public static class PaymentsApp
{
    /// <summary>
    /// Builds the app from command-line arguments: <c>--urls</c> (Kestrel), <c>--db PATH</c> (the SQLite ledger file,
    /// default <c>payments.db</c>), <c>--processing-delay-ms N</c> (simulated card-network latency, default 0).
    /// </summary>
    /// <param name="args">The command line.</param>
    /// <param name="configureServices">Replaces services after the defaults (tests swap the card network).</param>
    public static WebApplication Build(string[] args, Action<IServiceCollection>? configureServices = null)
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder(args);
        var options = new PaymentsOptions
        {
            DatabasePath = builder.Configuration["db"] ?? "payments.db",
            ProcessingDelay = TimeSpan.FromMilliseconds(builder.Configuration.GetValue("processing-delay-ms", 0)),
        };
        options.Validate();
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<Ledger>();
        builder.Services.AddSingleton<IPaymentProcessor, SimulatedCardNetwork>();
        builder.Services.AddSingleton<IdempotentPayments>();
        configureServices?.Invoke(builder.Services);

        WebApplication app = builder.Build();
        app.Services.GetRequiredService<Ledger>().EnsureCreated();
        app.MapPayments();
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            // A machine-readable line so that a parent process (demo, fault-injection suite) learns the bound port.
            foreach (string address in app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses ?? [])
            {
                Console.Out.WriteLine($"payments-service listening on {address}");
            }
        });
        return app;
    }

    /// <summary>The first address the started app listens on, for example <c>http://127.0.0.1:40123</c>.</summary>
    public static Uri ListeningAddress(this WebApplication app) =>
        new(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
}

/// <summary>The service's settings.</summary>
internal sealed record PaymentsOptions
{
    /// <summary>The SQLite ledger file.</summary>
    public string DatabasePath { get; init; } = "payments.db";

    /// <summary>Simulated card-network latency of each effect. Default zero.</summary>
    public TimeSpan ProcessingDelay { get; init; } = TimeSpan.Zero;

    /// <summary>
    /// How long a claimed key stays in flight before another request may take it over (the first one crashed).
    /// Default 30 s.
    /// </summary>
    public TimeSpan InFlightLease { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Amounts above this are declined (402), a stored result without an effect. Default 10,000.</summary>
    public decimal DeclineAbove { get; init; } = 10_000m;

    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(DatabasePath))
        {
            throw new ArgumentException("--db must name a file.");
        }

        if (ProcessingDelay < TimeSpan.Zero || InFlightLease <= TimeSpan.Zero)
        {
            throw new ArgumentException("Delays must not be negative and the lease must be positive.");
        }
    }
}
