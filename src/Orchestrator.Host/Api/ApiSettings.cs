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

    /// <summary>How long an <c>Idempotency-Key</c> (or queue <c>messageId</c>) is kept (<c>Retention:IdempotencyKeys</c>): a retry within it gets the first response, a request after it is new. Default 24 hours, as Stripe.</summary>
    public TimeSpan IdempotencyKeyRetention { get; init; } = LedgerRetention.Default.Messages;

    /// <summary>
    /// How long a confirmation webhook's <c>webhook-id</c> is kept (<c>Retention:WebhookIds</c>). At least twice the
    /// 5-minute timestamp tolerance: a delivery is accepted while its timestamp is within the tolerance of the receiver's
    /// clock either way, so a replay of it can arrive up to twice the tolerance after the first. Default 1 hour.
    /// </summary>
    public TimeSpan WebhookIdRetention { get; init; } = LedgerRetention.Default.Webhooks;

    /// <summary>
    /// How long an in-doubt journal entry is kept after its last attempt (<c>Retention:ToolCallJournal</c>): while its
    /// turn may still retry the write. At least the agent's confirmation timeout plus its turn duration (a day when the
    /// turn has no limit). Default 7 days.
    /// </summary>
    public TimeSpan ToolCallJournalRetention { get; init; } = TimeSpan.FromDays(7);

    /// <summary>How often <c>serve</c> deletes expired ledger keys and journal entries (<c>Retention:CleanupInterval</c>). Default 15 minutes.</summary>
    public TimeSpan CleanupInterval { get; init; } = TimeSpan.FromMinutes(15);

    /// <summary>Most rows one cleanup statement deletes (<c>Retention:CleanupBatchSize</c>); a pass repeats batches until none is full. Default 500.</summary>
    public int CleanupBatchSize { get; init; } = 500;

    /// <summary>The request ledger's retention by kind.</summary>
    public LedgerRetention LedgerRetention => new(this.IdempotencyKeyRetention, this.WebhookIdRetention);

    /// <summary>Shortest retention of idempotency keys: longer than a claim's lease and a client's prompt retries.</summary>
    public static readonly TimeSpan MinIdempotencyKeyRetention = TimeSpan.FromMinutes(10);

    /// <summary>Shortest retention of webhook ids: twice the timestamp tolerance, so clock skew either way cannot reopen a replay.</summary>
    public static readonly TimeSpan MinWebhookIdRetention = StandardWebhookVerifier.Tolerance * 2;

    private static readonly TimeSpan MaxRetention = TimeSpan.FromDays(366);

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

        TimeSpan keys = ReadDuration(config, "Retention:IdempotencyKeys", MinIdempotencyKeyRetention, MaxRetention) ?? defaults.IdempotencyKeyRetention;
        TimeSpan webhookIds = ReadDuration(config, "Retention:WebhookIds", MinWebhookIdRetention, MaxRetention) ?? defaults.WebhookIdRetention;
        TimeSpan journal = ReadDuration(config, "Retention:ToolCallJournal", TimeSpan.FromHours(1), MaxRetention) ?? defaults.ToolCallJournalRetention;
        TimeSpan interval = ReadDuration(config, "Retention:CleanupInterval", TimeSpan.FromSeconds(1), TimeSpan.FromDays(1)) ?? defaults.CleanupInterval;
        int batch = defaults.CleanupBatchSize;
        if (Value(config, "Retention:CleanupBatchSize") is { } rawBatch
            && (!int.TryParse(rawBatch, NumberStyles.Integer, CultureInfo.InvariantCulture, out batch) || batch is < 1 or > 10_000))
        {
            throw new InvalidOperationException($"Setting Retention:CleanupBatchSize must be a whole number from 1 to 10000; it is '{rawBatch}'.");
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
            IdempotencyKeyRetention = keys,
            WebhookIdRetention = webhookIds,
            ToolCallJournalRetention = journal,
            CleanupInterval = interval,
            CleanupBatchSize = batch,
        };
    }

    /// <summary>
    /// Throws, naming Retention:ToolCallJournal, when it is shorter than a turn of <paramref name="turn"/> can still
    /// retry a write: its confirmation timeout plus its duration limit (a day when it has none).
    /// </summary>
    public void CheckJournalRetention(Orchestrator.Agents.TurnOptions? turn)
    {
        turn ??= new Orchestrator.Agents.TurnOptions();
        TimeSpan needed = turn.ConfirmationTimeout + (turn.MaxDuration ?? TimeSpan.FromDays(1));
        if (this.ToolCallJournalRetention < needed)
        {
            throw new InvalidOperationException(
                $"Setting Retention:ToolCallJournal ({Describe(this.ToolCallJournalRetention)}) must be at least the agent's confirmation timeout plus its turn time ({Describe(needed)}): a turn still waiting could retry a write whose journal entry was purged.");
        }
    }

    /// <summary>A duration as the settings take it (<c>7d</c>, <c>24h</c>, <c>1.02:00:00</c>).</summary>
    public static string Describe(TimeSpan value) => value.ToString(value.TotalDays >= 1 ? @"d\.hh\:mm\:ss" : @"hh\:mm\:ss", CultureInfo.InvariantCulture);

    /// <summary>A duration setting: <c>90s</c>, <c>30m</c>, <c>24h</c>, <c>7d</c>, or a time span such as <c>1.00:00:00</c>, from <paramref name="min"/> to <paramref name="max"/>.</summary>
    private static TimeSpan? ReadDuration(IConfiguration config, string name, TimeSpan min, TimeSpan max)
    {
        string? raw = Value(config, name)?.Trim();
        if (raw is null)
        {
            return null;
        }

        TimeSpan? value = null;
        if (raw.Length >= 2 && long.TryParse(raw.AsSpan(0, raw.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out long n) && n <= 1_000_000)
        {
            value = raw[^1] switch
            {
                's' => TimeSpan.FromSeconds(n),
                'm' => TimeSpan.FromMinutes(n),
                'h' => TimeSpan.FromHours(n),
                'd' => TimeSpan.FromDays(n),
                _ => null,
            };
        }

        if (value is null && raw.Contains(':', StringComparison.Ordinal) && TimeSpan.TryParse(raw, CultureInfo.InvariantCulture, out TimeSpan parsed))
        {
            value = parsed;
        }

        return value is { } v && v >= min && v <= max
            ? v
            : throw new InvalidOperationException($"Setting {name} must be a duration from {Describe(min)} to {Describe(max)}, such as 30m, 24h, 7d or 1.00:00:00; it is '{raw}'.");
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
