using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Orchestrator.Agents;

namespace Orchestrator.Host;

/// <summary>
/// How every command of the host (serve, demo, replay) registers the agent turn: the key that seals sensitive argument
/// values in history, the journal that recognises a write left in doubt (shared by every worker of the hub), and the startup report of the tool schemas' cost.
/// </summary>
internal static class HostTurnOptions
{
    private const string LocalKeyFile = "sensitive-values.key";

    /// <summary>
    /// The turn options for <paramref name="settings"/>: on SQLite the key and the journal live next to the database; on
    /// Azure Storage the journal is the hub's table (<see cref="TableToolCallJournal"/>), shared by every worker process.
    /// </summary>
    /// <remarks>The journal, when there is one, is disposable: the caller disposes it when its worker stops.</remarks>
    public static AgentTurnOptions Create(HostSettings settings, ILoggerFactory loggerFactory, string? dataSourceOverride = null, TimeProvider? timeProvider = null, bool withJournal = true)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        return new AgentTurnOptions
        {
            TimeProvider = timeProvider ?? TimeProvider.System,
            LoggerFactory = loggerFactory,
            SensitiveValues = SensitiveValues(settings, dataSourceOverride),
            CallJournal = withJournal ? Journal(settings, dataSourceOverride) : null,
        };
    }

    /// <summary>
    /// The key that seals sensitive argument values for <paramref name="settings"/>' task hub: Agents:SensitiveValuesKey,
    /// or on SQLite the generated key beside the database; null on Azure Storage without a configured key (and on an
    /// in-memory SQLite store). The worker opens what it seals, so whatever raises a decision with edited arguments
    /// seals them with this one (<see cref="TurnConfirmations.SealEditedArguments"/>).
    /// </summary>
    /// <param name="settings">The host's settings.</param>
    /// <param name="dataSourceOverride">The SQLite file instead of the configured one.</param>
    /// <param name="createLocalKey">
    /// False for a command that only decides on an existing store: a missing key file means its worker seals nothing
    /// (then null is returned and nothing is created).
    /// </param>
    public static SensitiveValueProtector? SensitiveValues(HostSettings settings, string? dataSourceOverride = null, bool createLocalKey = true)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (settings.SensitiveValuesKey is { } key)
        {
            return SensitiveValueProtector.FromBase64(key, [.. settings.PreviousSensitiveValuesKeys]);
        }

        string? dataFolder = settings.UsesAzureStorage ? null : DataFolder(dataSourceOverride ?? settings.DataSource);
        if (dataFolder is null || (!createLocalKey && !File.Exists(Path.Combine(dataFolder, LocalKeyFile))))
        {
            return null;
        }

        return SensitiveValueProtector.FromBase64(LocalKey(dataFolder), [.. settings.PreviousSensitiveValuesKeys]);
    }

    /// <summary>
    /// The in-doubt journal every worker of the task hub shares: the hub's table on Azure Storage, a SQLite file beside
    /// the database on SQLite, none for an in-memory SQLite store.
    /// </summary>
    internal static IToolCallJournal? Journal(HostSettings settings, string? dataSourceOverride)
    {
        if (settings.UsesAzureStorage)
        {
            return new TableToolCallJournal(settings.StorageOptions().CreateTableServiceClient(), settings.HubName);
        }

        string? dataFolder = DataFolder(dataSourceOverride ?? settings.DataSource);
        return dataFolder is null ? null : new SqliteToolCallJournal(Path.Combine(dataFolder, "orchestrator.journal.db"));
    }

    /// <summary>Logs what the agent's tool schemas cost in the model's context window, warning above 20%.</summary>
    public static ToolSchemaCostReport LogSchemaCost(AgentDefinition agent, HostSettings settings, ILogger logger) =>
        ToolSchemaCost.MeasureAndLog(
            agent.Tools,
            new ToolSchemaCostOptions { ModelName = settings.ModelName ?? "gpt-4o", ContextWindowTokens = settings.ContextWindowTokens },
            logger);

    private static string? DataFolder(string dataSource)
    {
        if (dataSource.Contains(":memory:", StringComparison.Ordinal) || dataSource.StartsWith("file:", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        string folder = Path.GetDirectoryName(Path.GetFullPath(dataSource))!;
        Directory.CreateDirectory(folder);
        return folder;
    }

    /// <summary>The embedded default's key: generated once, kept beside the database (readable by its owner only).</summary>
    private static string LocalKey(string folder)
    {
        string path = Path.Combine(folder, LocalKeyFile);
        if (!File.Exists(path))
        {
            string key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
            try
            {
                var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
                if (!OperatingSystem.IsWindows())
                {
                    options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
                }

                using var stream = new FileStream(path, options);
                using var writer = new StreamWriter(stream);
                writer.Write(key);
            }
            catch (IOException) when (File.Exists(path))
            {
                // Another process created it first: use theirs.
            }
        }

        return File.ReadAllText(path).Trim();
    }
}
