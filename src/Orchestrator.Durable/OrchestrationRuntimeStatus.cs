namespace Orchestrator.Durable;

// WARNING: persisted by name in instance rows and history. Do not rename members.

/// <summary>The runtime status of an orchestration instance.</summary>
public enum OrchestrationRuntimeStatus
{
    /// <summary>Scheduled, not yet started by a worker.</summary>
    Pending = 0,

    /// <summary>Started and not finished (including waiting for events or timers).</summary>
    Running = 1,

    /// <summary>Finished with a result.</summary>
    Completed = 2,

    /// <summary>Restarted with new input; transient.</summary>
    ContinuedAsNew = 3,

    /// <summary>Finished with an unhandled failure.</summary>
    Failed = 4,

    /// <summary>Stopped by a client.</summary>
    Terminated = 5,
}

/// <summary>Helpers for <see cref="OrchestrationRuntimeStatus"/>.</summary>
public static class OrchestrationRuntimeStatusExtensions
{
    /// <summary>True for Completed, Failed and Terminated.</summary>
    public static bool IsTerminal(this OrchestrationRuntimeStatus status) =>
        status is OrchestrationRuntimeStatus.Completed or OrchestrationRuntimeStatus.Failed or OrchestrationRuntimeStatus.Terminated;
}
