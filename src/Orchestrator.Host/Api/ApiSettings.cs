using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Configuration;

namespace Orchestrator.Host.Api;

/// <summary>
/// The settings of <c>serve</c>: management key, webhook secrets and the queue trigger, read from the same sources as
/// <see cref="HostSettings"/> (host.json, local.settings.json <c>Values</c>, environment variables, which win).
/// </summary>
internal sealed partial record ApiSettings
{
    /// <summary>The management key (<c>Management:Key</c>); null when none is configured (serve then generates one).</summary>
    public string? ManagementKey { get; init; }

    /// <summary>Confirmation webhook secrets, <c>whsec_</c> + base64, several for rotation (<c>Webhooks:ConfirmationSecrets</c> or <c>Webhooks:ConfirmationSecret</c>).</summary>
    public IReadOnlyList<string> WebhookSecrets { get; init; } = [];

    /// <summary>The queue the queue trigger reads (<c>QueueTrigger:QueueName</c>); null turns the trigger off.</summary>
    public string? QueueName { get; init; }

    /// <summary>Deliveries of a failing queue message before it goes to the poison queue (host.json <c>extensions.queues.maxDequeueCount</c>). Default 5, as in Azure Functions.</summary>
    public int MaxDequeueCount { get; init; } = 5;

    /// <summary>How long a failed queue message stays invisible before its next delivery (<c>extensions.queues.visibilityTimeout</c>). Default 0, as in Azure Functions.</summary>
    public TimeSpan VisibilityTimeout { get; init; } = TimeSpan.Zero;

    /// <summary>Longest wait between polls of an empty queue (<c>extensions.queues.maxPollingInterval</c>). Default 2 seconds.</summary>
    public TimeSpan MaxPollingInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Instances read per store query while <c>GET /api/confirmations</c> pages through every running instance. Default 500.
    /// Not read from configuration (tests lower it to cross page boundaries with a few instances).
    /// </summary>
    public int ConfirmationListPageSize { get; init; } = 500;

    /// <summary>Shortest management key accepted, in characters.</summary>
    public const int MinManagementKeyLength = 16;

    /// <summary>Reads and validates the settings; an invalid one throws <see cref="InvalidOperationException"/> naming it.</summary>
    public static ApiSettings Load(string directory, HostSettings host)
    {
        ArgumentNullException.ThrowIfNull(host);
        IConfiguration config = new ConfigurationBuilder()
            .AddJsonFile(Path.Combine(directory, "host.json"), optional: true)
            .AddJsonFile(Path.Combine(directory, "local.settings.json"), optional: true)
            .AddEnvironmentVariables()
            .Build();
        return FromConfiguration(config, host);
    }

    internal static ApiSettings FromConfiguration(IConfiguration config, HostSettings host)
    {
        var defaults = new ApiSettings();
        string? key = Value(config, "Management:Key");
        if (key is not null && key.Trim().Length < MinManagementKeyLength)
        {
            throw new InvalidOperationException($"Setting Management:Key must be at least {MinManagementKeyLength} characters (or absent: serve then generates one).");
        }

        var secrets = new List<string>();
        foreach (string name in new[] { "Webhooks:ConfirmationSecrets", "Webhooks:ConfirmationSecret" })
        {
            foreach (string secret in (Value(config, name) ?? string.Empty).Split([' ', ',', ';'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (!StandardWebhookVerifier.TryDecodeSecret(secret, out _))
                {
                    throw new InvalidOperationException($"Setting {name} must hold secrets of the form whsec_<base64>; one is not.");
                }

                secrets.Add(secret);
            }
        }

        string? queue = Value(config, "QueueTrigger:QueueName");
        if (queue is not null)
        {
            if (!QueueNamePattern().IsMatch(queue) || queue.Contains("--", StringComparison.Ordinal) || queue.Length > 63 - "-poison".Length)
            {
                throw new InvalidOperationException($"Setting QueueTrigger:QueueName must be 3-56 lowercase letters, digits and single hyphens; it is '{queue}'.");
            }

            if (!host.UsesAzureStorage)
            {
                throw new InvalidOperationException("Setting QueueTrigger:QueueName needs AzureWebJobsStorage to name an Azure Storage account (a connection string or UseDevelopmentStorage=true).");
            }
        }

        IConfigurationSection queues = config.GetSection("extensions:queues");
        return defaults with
        {
            ManagementKey = key?.Trim(),
            WebhookSecrets = secrets,
            QueueName = queue,
            MaxDequeueCount = ReadPositive(queues, "maxDequeueCount") ?? defaults.MaxDequeueCount,
            VisibilityTimeout = ReadTimeSpan(queues, "visibilityTimeout") ?? defaults.VisibilityTimeout,
            MaxPollingInterval = ReadTimeSpan(queues, "maxPollingInterval") ?? defaults.MaxPollingInterval,
        };
    }

    /// <summary>
    /// A setting as Azure Functions finds it: the environment (<c>Management__Key</c>), else local.settings.json's
    /// <c>Values</c>, written either <c>Management__Key</c> or nested.
    /// </summary>
    private static string? Value(IConfiguration config, string name)
    {
        string? value = config[name] ?? config["Values:" + name.Replace(":", "__", StringComparison.Ordinal)] ?? config["Values:" + name];
        return string.IsNullOrWhiteSpace(value) ? null : value;
    }

    private static int? ReadPositive(IConfigurationSection section, string key)
    {
        string? raw = section[key];
        if (raw is null)
        {
            return null;
        }

        return int.TryParse(raw, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value) && value >= 1
            ? value
            : throw new InvalidOperationException($"Setting extensions.queues.{key} must be a positive integer; it is '{raw}'.");
    }

    private static TimeSpan? ReadTimeSpan(IConfigurationSection section, string key)
    {
        string? raw = section[key];
        if (raw is null)
        {
            return null;
        }

        return TimeSpan.TryParse(raw, CultureInfo.InvariantCulture, out TimeSpan value) && value >= TimeSpan.Zero && value <= TimeSpan.FromDays(7)
            ? value
            : throw new InvalidOperationException($"Setting extensions.queues.{key} must be a time span such as 00:00:30 (0 to 7 days); it is '{raw}'.");
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")]
    private static partial Regex QueueNamePattern();
}
