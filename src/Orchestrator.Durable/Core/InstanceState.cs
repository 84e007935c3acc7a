// CS1591: a persisted row shape; the properties are named for what they hold.
#pragma warning disable CS1591
namespace Orchestrator.Durable.Core;

/// <summary>The state of an instance after a checkpoint, as stored in the instances table.</summary>
public sealed record InstanceState
{
    public required string InstanceId { get; init; }
    public required string Name { get; init; }
    public required string ExecutionId { get; init; }
    public required OrchestrationRuntimeStatus Status { get; init; }
    public string? Input { get; init; }
    public string? Output { get; init; }
    public string? CustomStatus { get; init; }
    public TaskFailureDetails? FailureDetails { get; init; }
    public string? ParentInstanceId { get; init; }
}
