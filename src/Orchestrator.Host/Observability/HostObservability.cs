using System.Text.RegularExpressions;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Orchestrator.Host.Observability;

/// <summary>
/// The host's telemetry in one place: OpenTelemetry traces and metrics from the agent layer and the engine
/// (ActivitySource and Meter named <see cref="AgentsSource"/> and <see cref="DurableSource"/>) plus ASP.NET Core and
/// HttpClient, exported by OTLP when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set; structured JSON logs with secrets redacted.
/// </summary>
internal static partial class HostObservability
{
    /// <summary>The agent layer's ActivitySource and Meter.</summary>
    public const string AgentsSource = "Orchestrator.Agents";

    /// <summary>The engine's ActivitySource and Meter (subscribed to whether or not the engine emits any).</summary>
    public const string DurableSource = "Orchestrator.Durable";

    /// <summary>The service name telemetry is reported under, unless OTEL_SERVICE_NAME says otherwise.</summary>
    public const string ServiceName = "orchestrator-host";

    /// <summary>
    /// For <c>serve</c>: <c>builder.AddHostObservability(settings)</c> before <c>Build()</c>. Replaces the log providers
    /// with JSON lines on stdout (secrets redacted, correlation id on every line of a turn) and registers OpenTelemetry
    /// tracing and metrics (agent layer, engine, ASP.NET Core, HttpClient), exported by OTLP when
    /// <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set (the standard OTEL_* variables configure the exporter).
    /// </summary>
    public static TBuilder AddHostObservability<TBuilder>(this TBuilder builder, HostSettings settings, TextWriter? logOutput = null)
        where TBuilder : IHostApplicationBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(settings);
        SecretRedactor redactor = CreateRedactor(builder.Configuration);
        builder.Services.AddSingleton(redactor);
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(new JsonLinesLoggerProvider(logOutput ?? Console.Out, redactor));

        bool otlp = UsesOtlp(builder.Configuration);
        OpenTelemetryBuilder otel = builder.Services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(builder.Configuration["OTEL_SERVICE_NAME"] ?? ServiceName))
            .WithTracing(t => AddSources(t).AddAspNetCoreInstrumentation().AddHttpClientInstrumentation())
            .WithMetrics(m => AddMeters(m).AddAspNetCoreInstrumentation().AddHttpClientInstrumentation());
        if (otlp)
        {
            otel.UseOtlpExporter();
        }

        return builder;
    }

    /// <summary>
    /// For <c>demo</c>: <c>using var telemetry = HostObservability.StartConsoleTelemetry();</c> at the start. Prints the
    /// agent layer's and engine's spans and metrics with OpenTelemetry's console exporter until disposed.
    /// </summary>
    public static IDisposable StartConsoleTelemetry(Action<TracerProviderBuilder>? configureTracing = null)
    {
        ResourceBuilder resource = ResourceBuilder.CreateDefault().AddService(ServiceName);
        TracerProviderBuilder tracing = AddSources(Sdk.CreateTracerProviderBuilder().SetResourceBuilder(resource)).AddHttpClientInstrumentation();
        if (configureTracing is null)
        {
            tracing.AddConsoleExporter();
        }
        else
        {
            configureTracing(tracing);
        }

        TracerProvider tracer = tracing.Build();
        MeterProvider meter = AddMeters(Sdk.CreateMeterProviderBuilder().SetResourceBuilder(resource)).AddConsoleExporter().Build();
        return new Both(tracer, meter);
    }

    /// <summary>
    /// For the demo and the CLI: a logger factory writing JSON lines (secrets redacted) to <paramref name="output"/>, for
    /// example stderr so they never mix with a command's --json output.
    /// </summary>
    public static ILoggerFactory CreateJsonLoggerFactory(TextWriter output, SecretRedactor redactor, LogLevel minimumLevel = LogLevel.Information) =>
        LoggerFactory.Create(b => b.SetMinimumLevel(minimumLevel).AddProvider(new JsonLinesLoggerProvider(output, redactor, minimumLevel: minimumLevel)));

    /// <summary>Subscribes a tracer to the agent layer's and the engine's activity sources.</summary>
    public static TracerProviderBuilder AddSources(TracerProviderBuilder tracing) => tracing.AddSource(AgentsSource, DurableSource);

    /// <summary>Subscribes a meter provider to the agent layer's and the engine's meters.</summary>
    public static MeterProviderBuilder AddMeters(MeterProviderBuilder metrics) => metrics.AddMeter(AgentsSource, DurableSource);

    /// <summary>True when OTEL_EXPORTER_OTLP_ENDPOINT is set (environment variable or configuration).</summary>
    public static bool UsesOtlp(IConfiguration configuration) => !string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]);

    /// <summary>
    /// A redactor that knows the configured secrets: every configuration value whose key names a key, secret, password
    /// or token (the model API key, webhook secrets, the management key), and the account key inside a storage
    /// connection string.
    /// </summary>
    public static SecretRedactor CreateRedactor(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var secrets = new List<string?>();
        foreach (var (key, value) in configuration.AsEnumerable())
        {
            if (string.IsNullOrWhiteSpace(value))
            {
                continue;
            }

            string leaf = key[(key.LastIndexOf(':') + 1)..];
            if (SecretKeyName().IsMatch(leaf))
            {
                secrets.Add(value);
            }

            foreach (Match m in ConnectionStringSecret().Matches(value))
            {
                secrets.Add(m.Groups["v"].Value);
            }
        }

        return new SecretRedactor(secrets);
    }

    // Names like ApiKey, ManagementKey, Model__ApiKey, WebhookSecret(s), ClientSecret, Password, Token; not "hubName" or "partitionCount".
    [GeneratedRegex(@"(key|keys|secret|secrets|password|token)$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex SecretKeyName();

    [GeneratedRegex(@"(?:AccountKey|SharedAccessKey|SharedAccessSignature)=(?<v>[^;]+)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex ConnectionStringSecret();

    private sealed class Both(TracerProvider tracer, MeterProvider meter) : IDisposable
    {
        public void Dispose()
        {
            tracer.Dispose();
            meter.Dispose();
        }
    }
}
