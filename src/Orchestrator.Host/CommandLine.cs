using Orchestrator.Host.Cli;

namespace Orchestrator.Host;

/// <summary>The host's command line: <c>demo</c>, <c>serve</c> and the management commands (<c>Cli/</c>: status, history, approve, reject, purge, replay).</summary>
internal static class CommandLine
{
    public static Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken) =>
        RunAsync(args, stdout, stderr, CliContext.Default, cancellationToken);

    /// <summary>Runs a command; tests pass their own <paramref name="cli"/> (agent for replay, clock).</summary>
    internal static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CliContext cli, CancellationToken cancellationToken)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            await stdout.WriteLineAsync(Usage).ConfigureAwait(false);
            return args.Length == 0 ? 2 : 0;
        }

        try
        {
            switch (args[0])
            {
                case "status":
                    return await InspectCommands.StatusAsync(args.AsMemory(1), cli.Settings ?? HostSettings.Load(ConfigDirectory()), stdout, stderr, cancellationToken).ConfigureAwait(false);
                case "history":
                    return await InspectCommands.HistoryAsync(args.AsMemory(1), cli.Settings ?? HostSettings.Load(ConfigDirectory()), stdout, stderr, cancellationToken).ConfigureAwait(false);
                case "approve" or "reject":
                    return await DecideCommand.RunAsync(args[0] == "approve", args.AsMemory(1), cli.Settings ?? HostSettings.Load(ConfigDirectory()), cli, stdout, stderr, cancellationToken).ConfigureAwait(false);
                case "purge":
                    return await PurgeCommand.RunAsync(args.AsMemory(1), cli.Settings ?? HostSettings.Load(ConfigDirectory()), cli, stdout, stderr, cancellationToken).ConfigureAwait(false);
                case "replay":
                    return await ReplayCommand.RunAsync(args.AsMemory(1), cli.Settings ?? HostSettings.Load(ConfigDirectory()), cli, stdout, stderr, cancellationToken).ConfigureAwait(false);
                case "demo":
                    DemoOptions options = DemoOptions.Parse(args.AsSpan(1));
                    HostSettings settings = HostSettings.Load(ConfigDirectory());
                    return await DemoCommand.RunAsync(options, settings, stdout, cancellationToken).ConfigureAwait(false);
                case "serve":
                    Api.ServeCommandOptions serveOptions = Api.ServeCommandOptions.Parse(args.AsSpan(1));
                    HostSettings serveSettings = HostSettings.Load(ConfigDirectory());
                    Api.ApiSettings api = Api.ApiSettings.Load(ConfigDirectory(), serveSettings);
                    return await Api.ServeCommand.RunAsync(serveOptions, serveSettings, api, stdout, cancellationToken).ConfigureAwait(false);
                default:
                    await stderr.WriteLineAsync($"Unknown command '{args[0]}'.\n{Usage}").ConfigureAwait(false);
                    return 2;
            }
        }
        catch (ArgumentException ex)
        {
            await stderr.WriteLineAsync($"error: {ex.Message}").ConfigureAwait(false);
            return 2;
        }
        catch (InvalidOperationException ex)
        {
            await stderr.WriteLineAsync($"error: {ex.Message}").ConfigureAwait(false);
            return 1;
        }
    }

    /// <summary>The current directory when it holds host.json (a checkout), else the app's own folder.</summary>
    private static string ConfigDirectory() =>
        File.Exists(Path.Combine(Directory.GetCurrentDirectory(), "host.json")) ? Directory.GetCurrentDirectory() : AppContext.BaseDirectory;

    private const string Usage = """
        usage: Orchestrator.Host <command> [options]

        commands:
          demo [--approve all|none] [--json] [--db PATH] [--telemetry]
              Runs the support-desk refund incident end to end as a durable agent turn on the embedded SQLite
              backend (or the configured one): the model (scripted and offline unless Model:Endpoint is set)
              passes an account number as an order id and is corrected by validation, looks the order up,
              proposes a refund that waits for your confirmation (asked on the terminal unless --approve is
              given), the refund runs once with its idempotency key against the payments service (in process
              unless Payments:BaseUrl is set), a repeated refund is refused as already done, and the model
              answers. --json prints a JSON summary as the last line; --db sets the SQLite file; --telemetry
              prints the turn's OpenTelemetry spans and metrics (console exporter) before the summary.

          serve [--urls URL[;URL]] [--db PATH]
              Runs the HTTP API (conversations, confirmations, approvals, confirmation webhook, OpenAPI
              at /openapi/v1.json, /healthz, /readyz), the durable worker and, when configured, the
              queue trigger. Listens on http://127.0.0.1:7071 by default. Without Management:Key it
              generates a key, prints it once and listens on loopback only.

        management commands (on the configured backend: AzureWebJobsStorage / host.json, or --db PATH
        for a SQLite file; --json prints one JSON object instead of text; progress goes to stderr):
          status <id> [--json]
              An instance's runtime status; for a turn its phase, plan, pending confirmations (each
              named <turnInstanceId>/<toolCallId>), decisions and answer; for a conversation its turns.
          history <id> [--json]
              The recorded history of the instance's current execution, one event a line (--json:
              the engine's persisted event list).
          approve <turnInstanceId>/<toolCallId> [--hash H] [--by NAME] [--edit JSON|-] [--edit-file PATH] [--json]
          reject  <turnInstanceId>/<toolCallId> [--hash H] [--by NAME] [--json]
              Shows the confirmation card (tool, summary, exact arguments, hash, expiry) and sends the
              decision bound to the hash it showed; --hash insists on a hash seen elsewhere; --edit
              approves with edited arguments (one JSON object, validated with the agent's tools, its
              sensitive values sealed with the hub's key before they are stored); --edit - reads the
              JSON from stdin and --edit-file PATH from a file: prefer them for sensitive values, which
              on the command line end up in shell history and `ps`. A refused decision
              (not pending, already decided, expired, hash mismatch, invalid edit) exits 1 with the reason.
          purge <id> | purge [--status completed,failed,terminated] [--older-than 7d] [--page-size N] [--json]
              Deletes one finished instance with its history, or every finished instance matching the
              filter (age by creation time: s, m, h, d), listed N per store query (default 500).
              Running instances are never purged.
          replay <id> [--json]
              Re-runs the stored agent orchestration (turn or conversation) against its history with
              the current code, every tool and the model stubbed (no effect can fire, nothing is
              written); reports whether it replays deterministically (exit 0) or the non-determinism
              error (exit 1), and what it would do next.
        """;
}

/// <summary>Options of the demo command.</summary>
internal sealed record DemoOptions(bool? Approve, bool Json, string? DataSource)
{
    /// <summary>--telemetry: print the turn's OpenTelemetry spans and metrics with the console exporter (before the JSON line).</summary>
    public bool Telemetry { get; init; }

    public static DemoOptions Parse(ReadOnlySpan<string> args)
    {
        bool? approve = null;
        bool json = false;
        string? db = null;
        bool telemetry = false;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--approve":
                    string value = i + 1 < args.Length ? args[++i] : throw new ArgumentException("--approve needs a value: all or none.");
                    approve = value switch
                    {
                        "all" => true,
                        "none" => false,
                        _ => throw new ArgumentException($"--approve takes 'all' or 'none', not '{value}'."),
                    };
                    break;
                case "--json":
                    json = true;
                    break;
                case "--db":
                    db = i + 1 < args.Length ? args[++i] : throw new ArgumentException("--db needs a path.");
                    break;
                case "--telemetry":
                    telemetry = true;
                    break;
                default:
                    throw new ArgumentException($"Unknown demo option '{args[i]}'.");
            }
        }

        return new DemoOptions(approve, json, db) { Telemetry = telemetry };
    }
}
