namespace Orchestrator.Durable;

/// <summary>
/// The orchestrators and activities a worker can run, by name (case-insensitive).
/// </summary>
/// <remarks>Populate before starting a worker; reads are thread-safe once populated.</remarks>
public sealed class DurableTaskRegistry
{
    private readonly Dictionary<string, Func<ITaskOrchestrator>> orchestrators = new(StringComparer.OrdinalIgnoreCase);
    private readonly Dictionary<string, Func<ITaskActivity>> activities = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Registers an orchestrator type under its type name (or the given name).</summary>
    public DurableTaskRegistry AddOrchestrator<T>(string? name = null)
        where T : ITaskOrchestrator, new() => this.AddOrchestrator(name ?? typeof(T).Name, () => new T());

    /// <summary>Registers an orchestrator factory; a new instance is created for every execution.</summary>
    public DurableTaskRegistry AddOrchestrator(string name, Func<ITaskOrchestrator> factory)
    {
        ValidateName(name);
        if (!this.orchestrators.TryAdd(name, factory))
        {
            throw new ArgumentException($"An orchestrator named '{name}' is already registered.", nameof(name));
        }

        return this;
    }

    /// <summary>Registers an orchestrator written as a function.</summary>
    public DurableTaskRegistry AddOrchestratorFunc<TInput, TOutput>(string name, Func<TaskOrchestrationContext, TInput, Task<TOutput>> implementation) =>
        this.AddOrchestrator(name, () => new FuncOrchestrator<TInput, TOutput>(implementation));

    /// <summary>Registers an activity type under its type name (or the given name).</summary>
    public DurableTaskRegistry AddActivity<T>(string? name = null)
        where T : ITaskActivity, new() => this.AddActivity(name ?? typeof(T).Name, () => new T());

    /// <summary>Registers an activity factory (a factory may return a shared instance).</summary>
    public DurableTaskRegistry AddActivity(string name, Func<ITaskActivity> factory)
    {
        ValidateName(name);
        if (!this.activities.TryAdd(name, factory))
        {
            throw new ArgumentException($"An activity named '{name}' is already registered.", nameof(name));
        }

        return this;
    }

    /// <summary>Registers an activity written as a function.</summary>
    public DurableTaskRegistry AddActivityFunc<TInput, TOutput>(string name, Func<TaskActivityContext, TInput, Task<TOutput>> implementation) =>
        this.AddActivity(name, () => new FuncActivity<TInput, TOutput>(implementation));

    /// <summary>Registers a synchronous activity written as a function.</summary>
    public DurableTaskRegistry AddActivityFunc<TInput, TOutput>(string name, Func<TaskActivityContext, TInput, TOutput> implementation) =>
        this.AddActivity(name, () => new FuncActivity<TInput, TOutput>((c, i) => Task.FromResult(implementation(c, i))));

    /// <summary>True when an orchestrator with this name is registered.</summary>
    public bool ContainsOrchestrator(string name) => this.orchestrators.ContainsKey(name);

    /// <summary>True when an activity with this name is registered.</summary>
    public bool ContainsActivity(string name) => this.activities.ContainsKey(name);

    /// <summary>The registered orchestrator names.</summary>
    public IReadOnlyCollection<string> OrchestratorNames => this.orchestrators.Keys;

    /// <summary>The registered activity names.</summary>
    public IReadOnlyCollection<string> ActivityNames => this.activities.Keys;

    internal ITaskOrchestrator? CreateOrchestrator(string name) => this.orchestrators.TryGetValue(name, out var f) ? f() : null;

    internal ITaskActivity? CreateActivity(string name) => this.activities.TryGetValue(name, out var f) ? f() : null;

    private static void ValidateName(string name)
    {
        if (string.IsNullOrWhiteSpace(name) || name.Contains('|', StringComparison.Ordinal))
        {
            throw new ArgumentException($"'{name}' is not a valid name: it must be non-empty and must not contain '|'.", nameof(name));
        }
    }

    private sealed class FuncOrchestrator<TInput, TOutput>(Func<TaskOrchestrationContext, TInput, Task<TOutput>> f) : TaskOrchestrator<TInput, TOutput>
    {
        public override Task<TOutput> RunAsync(TaskOrchestrationContext context, TInput input) => f(context, input);
    }

    private sealed class FuncActivity<TInput, TOutput>(Func<TaskActivityContext, TInput, Task<TOutput>> f) : TaskActivity<TInput, TOutput>
    {
        public override Task<TOutput> RunAsync(TaskActivityContext context, TInput input) => f(context, input);
    }
}
