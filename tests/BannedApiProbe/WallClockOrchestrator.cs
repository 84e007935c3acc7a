using Orchestrator.Durable;

namespace BannedApiProbe;

public sealed class WallClockOrchestrator : TaskOrchestrator<string, string>
{
    public override async Task<string> RunAsync(TaskOrchestrationContext context, string input)
    {
        await Task.Delay(TimeSpan.FromSeconds(1));
        return $"{DateTime.UtcNow:O} {Guid.NewGuid()}";
    }
}
