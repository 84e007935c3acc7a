using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Orchestrator.Agents;

namespace Orchestrator.Host;

/// <summary>
/// How every command of the host (serve, demo, replay) registers the agent turn: the key that seals sensitive argument
/// values in history, the journal that recognises a write left in doubt, and the startup report of the tool schemas' cost.
/// </summary>
internal static class HostTurnOptions
{
    /// <summary>The turn options for <paramref name="settings"/>; on SQLite the key and the journal live next to the database.</summary>
    public static AgentTurnOptions Create(HostSettings settings, ILoggerFactory loggerFactory, string? dataSourceOverride = null, TimeProvider? timeProvider = null, bool withJournal = true)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        string? dataFolder = settings.UsesAzureStorage ? null : DataFolder(dataSourceOverride ?? settings.DataSource);
        SensitiveValueProtector? protector = settings.SensitiveValuesKey is { } key
            ? SensitiveValueProtector.FromBase64(key, [.. settings.PreviousSensitiveValuesKeys])
            : dataFolder is null ? null : SensitiveValueProtector.FromBase64(LocalKey(dataFolder), [.. settings.PreviousSensitiveValuesKeys]);
        return new AgentTurnOptions
        {
            TimeProvider = timeProvider ?? TimeProvider.System,
            LoggerFactory = loggerFactory,
            SensitiveValues = protector,
            CallJournal = dataFolder is null || !withJournal ? null : new SqliteToolCallJournal(Path.Combine(dataFolder, "orchestrator.journal.db")),
        };
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
        string path = Path.Combine(folder, "sensitive-values.key");
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
