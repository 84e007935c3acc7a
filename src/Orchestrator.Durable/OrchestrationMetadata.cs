namespace Orchestrator.Durable;

/// <summary>The state of an orchestration instance as a client sees it.</summary>
public sealed record OrchestrationMetadata
{
    /// <summary>The instance id.</summary>
    public required string InstanceId { get; init; }

    /// <summary>The orchestrator name.</summary>
    public required string Name { get; init; }

    /// <summary>The current execution id.</summary>
    public required string ExecutionId { get; init; }

    /// <summary>The runtime status.</summary>
    public required OrchestrationRuntimeStatus RuntimeStatus { get; init; }

    /// <summary>When the instance was created.</summary>
    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>When the instance state last changed.</summary>
    public DateTimeOffset LastUpdatedAt { get; init; }

    /// <summary>When the instance finished, if it has.</summary>
    public DateTimeOffset? CompletedAt { get; init; }

    /// <summary>The input as JSON.</summary>
    public string? SerializedInput { get; init; }

    /// <summary>The output as JSON (for Terminated, the reason).</summary>
    public string? SerializedOutput { get; init; }

    /// <summary>The custom status as JSON.</summary>
    public string? SerializedCustomStatus { get; init; }

    /// <summary>Why the instance failed.</summary>
    public TaskFailureDetails? FailureDetails { get; init; }

    /// <summary>The parent instance, for sub-orchestrations.</summary>
    public string? ParentInstanceId { get; init; }

    /// <summary>True once the instance is Completed, Failed or Terminated.</summary>
    public bool IsCompleted => this.RuntimeStatus.IsTerminal();

    /// <summary>Reads the input.</summary>
    public T? ReadInputAs<T>(DataConverter? converter = null) => (converter ?? DataConverter.Default).Deserialize<T>(this.SerializedInput);

    /// <summary>Reads the output.</summary>
    public T? ReadOutputAs<T>(DataConverter? converter = null) => (converter ?? DataConverter.Default).Deserialize<T>(this.SerializedOutput);

    /// <summary>Reads the custom status.</summary>
    public T? ReadCustomStatusAs<T>(DataConverter? converter = null) => (converter ?? DataConverter.Default).Deserialize<T>(this.SerializedCustomStatus);
}
