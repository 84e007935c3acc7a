using Microsoft.Extensions.Logging;
using Orchestrator.Durable.Backend;
using Orchestrator.Durable.Client;

namespace Orchestrator.Host.Cli;

/// <summary>
/// What the management commands need from outside: where the settings come from, the clock, and how to build the
/// agent whose orchestrator code <c>replay</c> re-runs. Tests pass their own agent through <see cref="AgentFactory"/>.
/// </summary>
internal sealed record CliContext
{
    /// <summary>The host's default: settings from the config directory, the system clock, <see cref="HostAgents.CreateDefaultAsync"/>.</summary>
    public static CliContext Default { get; } = new();

    /// <summary>Builds the agent the host runs; only <c>replay</c> and <c>approve --edit</c> (to validate and seal the edit) call it.</summary>
    public Func<HostSettings, ILoggerFactory, CancellationToken, Task<HostAgentRuntime>> AgentFactory { get; init; } = HostAgents.CreateDefaultAsync;

    /// <summary>The settings to use; null (the default) loads them from host.json, local.settings.json and the environment.</summary>
    public HostSettings? Settings { get; init; }

    /// <summary>The clock confirmations' expiry and purge ages are measured on.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>What <c>approve --edit -</c> reads the edited arguments from; null (the default) is the process's standard input.</summary>
    public TextReader? Stdin { get; init; }
}

/// <summary>The options every management command takes.</summary>
internal sealed class CliArguments
{
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _flags = new(StringComparer.Ordinal);

    public List<string> Positionals { get; } = [];

    public bool Json => _flags.Contains("--json");

    /// <summary>The SQLite file to use instead of the configured one.</summary>
    public string? Db => Value("--db");

    public bool Has(string flag) => _flags.Contains(flag);

    public string? Value(string option) => _values.GetValueOrDefault(option);

    /// <summary>Parses <paramref name="args"/>: <paramref name="flags"/> take no value, <paramref name="valued"/> take one; anything else starting with "--" is refused.</summary>
    public static CliArguments Parse(string command, ReadOnlySpan<string> args, string[] flags, string[] valued)
    {
        var result = new CliArguments();
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            if (a == "--db" || valued.Contains(a))
            {
                if (i + 1 >= args.Length || string.IsNullOrWhiteSpace(args[i + 1]))
                {
                    throw new ArgumentException($"{command}: {a} needs a value.");
                }

                if (!result._values.TryAdd(a, args[++i]))
                {
                    throw new ArgumentException($"{command}: {a} is given twice.");
                }
            }
            else if (a == "--json" || flags.Contains(a))
            {
                result._flags.Add(a);
            }
            else if (a.StartsWith("--", StringComparison.Ordinal))
            {
                throw new ArgumentException($"Unknown {command} option '{a}'.");
            }
            else
            {
                result.Positionals.Add(a);
            }
        }

        return result;
    }

    /// <summary>The single positional argument, or a usage error naming <paramref name="what"/>.</summary>
    public string Single(string command, string what) => Positionals.Count == 1
        ? Positionals[0]
        : throw new ArgumentException($"{command} needs exactly one {what}; got {Positionals.Count}.");
}

/// <summary>Opens the configured store for one command, refusing to create an empty SQLite file where none exists.</summary>
internal sealed class CliStore : IAsyncDisposable
{
    private CliStore(IOrchestrationBackend backend)
    {
        Backend = backend;
        Client = new DurableTaskClient(backend);
    }

    public IOrchestrationBackend Backend { get; }

    public DurableTaskClient Client { get; }

    public static CliStore Open(HostSettings settings, string? dbOverride)
    {
        if (!settings.UsesAzureStorage)
        {
            string path = Path.GetFullPath(dbOverride ?? settings.DataSource);
            if (!File.Exists(path))
            {
                // Opening would create an empty database: a typo in --db must not leave a file behind.
                throw new InvalidOperationException($"No SQLite store at {path}. Set AzureWebJobsStorage (or host.json's storageProvider.dataSource), or pass --db PATH.");
            }
        }

        return new CliStore(settings.CreateBackend(dbOverride));
    }

    public ValueTask DisposeAsync() => Backend.DisposeAsync();
}
