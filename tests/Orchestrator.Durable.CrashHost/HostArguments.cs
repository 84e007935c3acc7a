using System.Globalization;
using Orchestrator.Durable.Worker;

namespace Orchestrator.Durable.CrashHost;

/// <summary>The parsed command line of the crash host.</summary>
internal sealed record HostArguments
{
    public required string DbPath { get; init; }

    public required string LogPath { get; init; }

    public string Tag { get; init; } = "host";

    public CheckpointStage? CrashStage { get; init; }

    public int CrashAt { get; init; }

    public bool CrashAtLast { get; init; }

    public string? CrashInstanceId { get; init; }

    public string? BlockInstanceId { get; init; }

    public int? BlockTaskId { get; init; }

    public bool FreeRunning { get; init; }

    public static HostArguments Parse(string[] args)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < args.Length; i += 2)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
            {
                throw new ArgumentException($"Expected '--name value' pairs, got '{args[i]}'.", nameof(args));
            }

            values[args[i][2..]] = args[i + 1];
        }

        string Required(string name) => values.TryGetValue(name, out string? v) ? v : throw new ArgumentException($"--{name} is required.", nameof(args));
        string? Optional(string name) => values.GetValueOrDefault(name);

        var known = new HashSet<string>(StringComparer.Ordinal) { "db", "log", "tag", "crash-stage", "crash-at", "crash-instance", "block-instance", "block-task", "free-running" };
        foreach (string name in values.Keys)
        {
            if (!known.Contains(name))
            {
                throw new ArgumentException($"Unknown option --{name}.", nameof(args));
            }
        }

        CheckpointStage? stage = null;
        int crashAt = 0;
        bool last = false;
        if (Optional("crash-stage") is { } s)
        {
            stage = Enum.Parse<CheckpointStage>(s, ignoreCase: false);
            string at = Required("crash-at");
            if (at == "last")
            {
                last = true;
            }
            else if (!int.TryParse(at, NumberStyles.None, CultureInfo.InvariantCulture, out crashAt) || crashAt < 1)
            {
                throw new ArgumentException($"--crash-at must be a positive number or 'last', got '{at}'.", nameof(args));
            }
        }
        else if (Optional("crash-at") is not null)
        {
            throw new ArgumentException("--crash-at needs --crash-stage.", nameof(args));
        }

        int? blockTask = null;
        if (Optional("block-task") is { } bt)
        {
            blockTask = int.TryParse(bt, NumberStyles.None, CultureInfo.InvariantCulture, out int t)
                ? t
                : throw new ArgumentException($"--block-task must be a task id, got '{bt}'.", nameof(args));
        }

        return new HostArguments
        {
            DbPath = Required("db"),
            LogPath = Required("log"),
            Tag = Optional("tag") ?? "host",
            CrashStage = stage,
            CrashAt = crashAt,
            CrashAtLast = last,
            CrashInstanceId = Optional("crash-instance"),
            BlockInstanceId = Optional("block-instance"),
            BlockTaskId = blockTask,
            FreeRunning = Optional("free-running") switch
            {
                null or "false" => false,
                "true" => true,
                var v => throw new ArgumentException($"--free-running must be true or false, got '{v}'.", nameof(args)),
            },
        };
    }
}
