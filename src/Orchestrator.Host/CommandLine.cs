namespace Orchestrator.Host;

/// <summary>The host's command line: <c>demo</c> today; <c>serve</c> and the management commands arrive with the HTTP host.</summary>
internal static class CommandLine
{
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
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
          demo [--approve all|none] [--json] [--db PATH]
              Runs a refund orchestration end to end on the embedded SQLite backend: an activity
              looks the order up, the orchestration waits durably for a human approval (asked on
              the terminal unless --approve is given), then refunds with an idempotency key derived
              from durable identity, and prints the recorded history. --json prints a JSON summary
              as the last line.
          serve [--urls URL[;URL]] [--db PATH]
              Runs the HTTP API (conversations, confirmations, approvals, confirmation webhook, OpenAPI
              at /openapi/v1.json, /healthz, /readyz), the durable worker and, when configured, the
              queue trigger. Listens on http://127.0.0.1:7071 by default. Without Management:Key it
              generates a key, prints it once and listens on loopback only.
        """;
}

/// <summary>Options of the demo command.</summary>
internal sealed record DemoOptions(bool? Approve, bool Json, string? DataSource)
{
    public static DemoOptions Parse(ReadOnlySpan<string> args)
    {
        bool? approve = null;
        bool json = false;
        string? db = null;
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
                default:
                    throw new ArgumentException($"Unknown demo option '{args[i]}'.");
            }
        }

        return new DemoOptions(approve, json, db);
    }
}
