using System.Diagnostics;

namespace Orchestrator.Durable.Tests;

public class BuildRulesTests
{
    [Fact(Timeout = 300_000)]
    public async Task Build_OrchestratorReadingWallClockGuidOrDelay_FailsWithBannedApiErrors()
    {
        string probe = Path.Combine(RepositoryRoot(), "tests", "BannedApiProbe", "BannedApiProbe.csproj");
        var psi = new ProcessStartInfo("dotnet", ["build", probe, "--nologo", "-v:q", "-p:BuildProjectReferences=true"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using Process p = Process.Start(psi)!;
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        string output = await stdout + await stderr;

        Assert.NotEqual(0, p.ExitCode);
        Assert.Contains("RS0030", output);
        Assert.Contains("DateTime.UtcNow", output);
        Assert.Contains("Guid.NewGuid", output);
        Assert.Contains("Task.Delay", output);
    }

    internal static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Orchestrator.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Orchestrator.sln not found above " + AppContext.BaseDirectory);
    }
}
