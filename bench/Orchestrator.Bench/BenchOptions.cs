using System.Globalization;
using Orchestrator.Durable.Sqlite;

namespace Orchestrator.Bench;

/// <summary>A command line the benchmark cannot run; reported on stderr with exit code 2.</summary>
internal sealed class UsageException(string message) : Exception(message);

/// <summary>The parsed command line.</summary>
internal sealed record BenchOptions
{
    public const string Usage = """
        usage: Orchestrator.Bench <workload> --backend <backend> [options]

        workloads:
          hello-sequence   each orchestration calls 5 trivial activities in sequence (default count 1000)
          fan-out          each orchestration fans out 100 trivial activities and fans in (default count 20)
          waiting          N orchestrations wait for an external event, then all are released (default count 1000)
          turn             N durable agent turns (AgentTurn, SQLite) at once: a scripted model proposes 3 reads and
                           1 write needing confirmation (approved as soon as its card appears), then answers
                           (default count 1, one turn at a time; --count 20 for 20 at once; --backend
                           defaults to sqlite)
          turn-baseline    the same N turns in memory with Microsoft.Extensions.AI's FunctionInvokingChatClient
          query            creates N instances (no worker), then times paged instance queries: every page of 100,
                           a 1% prefix, a status none has (default count 20000 on sqlite, 2000 on azurite)

        backends (not for turn-baseline; turn runs on sqlite only):
          sqlite           embedded SQLite file (WAL)
          azurite          Azure Storage backend against Azurite: AZURITE_CONNECTION_STRING if set, else
                           Azurite on ports 10000-10002 if it answers, else a private Azurite started from
                           node_modules/.bin/azurite (run 'npm ci') on free ports; a fresh task hub per run

        options:
          --count N                    orchestrations to run
          --db PATH                    SQLite file to create (must not exist; kept afterwards).
                                       Default: a fresh temp file, deleted afterwards
          --synchronous full|normal    SQLite durability: FULL (default, fsync per commit) or NORMAL
          --wal-checkpoints background|inline
                                       SQLite WAL checkpoints on a second connection when the store is
                                       idle (default) or inside the commit that fills the log (SQLite's own)
          --warmup N                   orchestrations run (same workload, same store) before measuring;
                                       default: the count (waiting: at most 1000; turn, turn-baseline: at
                                       least 600); 0 to skip
          --max-orchestrations N       worker's MaxConcurrentOrchestrations (default: the worker default)
          --max-activities N           worker's MaxConcurrentActivities (default: the worker default)
          --dispatchers N              worker's DispatcherCount (default: the worker default)
          --cached-orchestrations N    worker's MaxCachedOrchestrations: orchestrations kept in memory
                                       between episodes (default: the worker default, 1000); 0 = replay
                                       every episode
          --concurrency N              hello-sequence/fan-out: at most N orchestrations in flight, each
                                       started when an earlier one completed (default: all at once)
          --workers N                  azurite: workers on the task hub (default 1, in the bench process);
                                       N > 1 adds N-1 worker processes (the bench re-launched in worker mode)
          --model-latency-ms N         turn, turn-baseline: simulated latency of each model call (default 0)
          --compare-baseline           turn: also run turn-baseline in the same process and add baselineSeconds
                                       and overheadRatio (durable / baseline) to the JSON line
          --rounds N                   turn, turn-baseline: measured batches of --count turns, one after the
                                       other, after one warm-up; seconds and baselineSeconds are their
                                       medians (default 10)
          --timeout SECONDS            give up after this long (default 600); exit code 1
        """;

    public required string Workload { get; init; }

    public required string Backend { get; init; }

    public int? Count { get; init; }

    public string? DbPath { get; init; }

    public bool DurableCommits { get; init; } = true;

    public bool BackgroundWalCheckpoints { get; init; } = true;

    public int? Warmup { get; init; }

    public int? MaxConcurrentOrchestrations { get; init; }

    public int? MaxConcurrentActivities { get; init; }

    public int? DispatcherCount { get; init; }

    public int? MaxCachedOrchestrations { get; init; }

    public int? Concurrency { get; init; }

    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(600);

    public int Workers { get; init; } = 1;

    /// <summary>turn/turn-baseline: simulated latency of each model call, in milliseconds.</summary>
    public int ModelLatencyMs { get; init; }

    /// <summary>turn: also run turn-baseline and report the ratio.</summary>
    public bool CompareBaseline { get; init; }

    /// <summary>turn/turn-baseline: measured batches per side; the reported seconds are their median.</summary>
    public int Rounds { get; init; } = DefaultRounds;

    public const int DefaultRounds = 10;

    /// <summary>The SQLite backend's options for a database at <paramref name="dbPath"/>, with this command line's durability and checkpoint settings.</summary>
    public SqliteOrchestrationBackendOptions SqliteOptions(string dbPath) =>
        new() { DataSource = dbPath, DurableCommits = this.DurableCommits, BackgroundWalCheckpoints = this.BackgroundWalCheckpoints };

    /// <summary>Whether the workload is one of the agent-turn workloads (their own runner, <see cref="TurnBenchRunner"/>).</summary>
    public bool IsTurnWorkload => Workload is "turn" or "turn-baseline";

    public static readonly string[] Workloads = ["hello-sequence", "fan-out", "waiting", "turn", "turn-baseline", "query"];

    public static readonly string[] Backends = ["sqlite", "azurite"];

    /// <exception cref="UsageException">The arguments are not a valid command line.</exception>
    public static BenchOptions Parse(string[] args)
    {
        string? workload = null;
        string? backend = null;
        int? count = null, warmup = null, maxOrch = null, maxAct = null, dispatchers = null, concurrency = null, cached = null;
        string? db = null;
        int workers = 1;
        int? modelLatencyMs = null, rounds = null;
        bool compareBaseline = false;
        bool durable = true;
        bool backgroundCheckpoints = true;
        TimeSpan timeout = TimeSpan.FromSeconds(600);
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            switch (a)
            {
                case "--backend":
                    backend = Value(args, ref i);
                    break;
                case "--count":
                    count = PositiveInt(a, Value(args, ref i), allowZero: false);
                    break;
                case "--db":
                    db = Value(args, ref i);
                    break;
                case "--synchronous":
                    durable = Either(a, Value(args, ref i), "full", "normal");
                    break;
                case "--wal-checkpoints":
                    backgroundCheckpoints = Either(a, Value(args, ref i), "background", "inline");
                    break;
                case "--warmup":
                    warmup = PositiveInt(a, Value(args, ref i), allowZero: true);
                    break;
                case "--max-orchestrations":
                    maxOrch = PositiveInt(a, Value(args, ref i), allowZero: false);
                    break;
                case "--max-activities":
                    maxAct = PositiveInt(a, Value(args, ref i), allowZero: false);
                    break;
                case "--dispatchers":
                    dispatchers = PositiveInt(a, Value(args, ref i), allowZero: false);
                    break;
                case "--cached-orchestrations":
                    cached = PositiveInt(a, Value(args, ref i), allowZero: true);
                    break;
                case "--concurrency":
                    concurrency = PositiveInt(a, Value(args, ref i), allowZero: false);
                    break;
                case "--workers":
                    workers = PositiveInt(a, Value(args, ref i), allowZero: false);
                    break;
                case "--model-latency-ms":
                    modelLatencyMs = PositiveInt(a, Value(args, ref i), allowZero: true);
                    break;
                case "--rounds":
                    rounds = PositiveInt(a, Value(args, ref i), allowZero: false);
                    break;
                case "--compare-baseline":
                    compareBaseline = true;
                    break;
                case "--timeout":
                    timeout = TimeSpan.FromSeconds(PositiveInt(a, Value(args, ref i), allowZero: false));
                    break;
                default:
                    if (a.StartsWith('-'))
                    {
                        throw new UsageException($"Unknown option '{a}'.");
                    }

                    if (workload is not null)
                    {
                        throw new UsageException($"Unexpected argument '{a}' (the workload is already '{workload}').");
                    }

                    workload = a;
                    break;
            }
        }

        if (workload is null)
        {
            throw new UsageException("No workload given.");
        }

        if (!Workloads.Contains(workload))
        {
            throw new UsageException($"Unknown workload '{workload}'; expected one of: {string.Join(", ", Workloads)}.");
        }

        bool turnWorkload = workload is "turn" or "turn-baseline";
        if (!turnWorkload && (modelLatencyMs is not null || compareBaseline || rounds is not null))
        {
            throw new UsageException($"--model-latency-ms, --compare-baseline and --rounds apply to the turn workloads only, not '{workload}'.");
        }

        if (compareBaseline && workload != "turn")
        {
            throw new UsageException("--compare-baseline applies to 'turn' (it adds the baseline run to the durable one).");
        }

        if (turnWorkload)
        {
            if (workload == "turn-baseline" && (backend is not null || db is not null))
            {
                throw new UsageException("turn-baseline runs in memory: it takes no --backend and no --db.");
            }

            if (workload == "turn" && backend is not null && backend != "sqlite")
            {
                throw new UsageException($"turn runs on --backend sqlite only, not '{backend}'.");
            }

            if (concurrency is not null)
            {
                throw new UsageException("--concurrency does not apply to the turn workloads: all turns start at once.");
            }

            backend = workload == "turn" ? "sqlite" : "none";
        }

        if (backend is null)
        {
            throw new UsageException("No backend given; pass --backend sqlite.");
        }

        if (!turnWorkload && !Backends.Contains(backend))
        {
            throw new UsageException($"Unknown backend '{backend}'; expected one of: {string.Join(", ", Backends)}.");
        }

        if (backend == "azurite" && db is not null)
        {
            throw new UsageException("--db applies to the sqlite backend only; the azurite backend uses a fresh task hub per run.");
        }

        if (workers > 1 && backend != "azurite")
        {
            throw new UsageException($"--workers {workers}: more than one worker is implemented for --backend azurite only (SQLite is one process's file).");
        }

        if (db is not null && (File.Exists(db) || Directory.Exists(db)))
        {
            throw new UsageException($"--db '{db}' already exists; the benchmark needs a fresh database. Pass a new path or delete it.");
        }

        return new BenchOptions
        {
            Workload = workload,
            Backend = backend,
            Count = count,
            DbPath = db,
            DurableCommits = durable,
            BackgroundWalCheckpoints = backgroundCheckpoints,
            Warmup = warmup,
            MaxConcurrentOrchestrations = maxOrch,
            MaxConcurrentActivities = maxAct,
            DispatcherCount = dispatchers,
            MaxCachedOrchestrations = cached,
            Concurrency = concurrency,
            Timeout = timeout,
            Workers = workers,
            ModelLatencyMs = modelLatencyMs ?? 0,
            CompareBaseline = compareBaseline,
            Rounds = rounds ?? DefaultRounds,
        };
    }

    private static string Value(string[] args, ref int i)
    {
        if (i + 1 >= args.Length || args[i + 1].StartsWith("--", StringComparison.Ordinal))
        {
            throw new UsageException($"Option '{args[i]}' needs a value.");
        }

        return args[++i];
    }

    /// <summary>True for <paramref name="first"/>, false for <paramref name="second"/> (any case); anything else is a usage error.</summary>
    private static bool Either(string option, string value, string first, string second) =>
        string.Equals(value, first, StringComparison.OrdinalIgnoreCase) ? true
        : string.Equals(value, second, StringComparison.OrdinalIgnoreCase) ? false
        : throw new UsageException($"{option} must be '{first}' or '{second}', not '{value}'.");

    private static int PositiveInt(string option, string value, bool allowZero)
    {
        if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int n) || (n == 0 && !allowZero))
        {
            throw new UsageException($"Option '{option}' needs a {(allowZero ? "non-negative" : "positive")} integer, not '{value}'.");
        }

        return n;
    }
}
