using System.Diagnostics;
using System.Text;
using System.Text.Json;

namespace Orchestrator.Host.Tests;

/// <summary>
/// The README's demo command, run as a new user would: a fresh clone of the commit under test, no configuration,
/// no network beyond the local NuGet cache, build output inside the clone (a temp folder).
/// </summary>
public sealed class ReadmeCommandsTests : IDisposable
{
    private const string DemoCommand = "dotnet run --project src/Orchestrator.Host -- demo";
    private static readonly TimeSpan StepLimit = TimeSpan.FromMinutes(8); // ~1.5 min on a quiet machine, 5 min at load 40 on 2 cores
    private readonly string clone = Path.Combine(Path.GetTempPath(), $"fresh-clone-{Environment.ProcessId}-{Environment.TickCount64}");

    [Fact(Timeout = 720_000)]
    public async Task ReadmeDemo_FreshCloneNoConfiguration_RunsTheRefundIncidentAndPrintsJsonLast()
    {
        string root = RepositoryRoot();
        Assert.Contains(DemoCommand, await File.ReadAllTextAsync(Path.Combine(root, "README.md")), StringComparison.Ordinal);
        string head = (await RunAsync(root, "git", "rev-parse", "HEAD")).Stdout.Trim();

        await RunAsync(Path.GetTempPath(), "git", "clone", "--quiet", "--no-checkout", root, this.clone);
        await RunAsync(this.clone, "git", "checkout", "--quiet", "--detach", head);
        Assert.False(File.Exists(Path.Combine(this.clone, "local.settings.json")));

        var (_, stdout) = await RunAsync(this.clone, "dotnet", "run", "--project", "src/Orchestrator.Host", "--", "demo", "--approve", "all", "--json");

        string last = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)[^1];
        using JsonDocument json = JsonDocument.Parse(last);
        JsonElement summary = json.RootElement;
        Assert.False(string.IsNullOrEmpty(summary.GetProperty("instanceId").GetString()));
        Assert.Equal("Completed", summary.GetProperty("status").GetString());
        Assert.Equal(4, summary.GetProperty("toolCalls").GetInt32());
        Assert.Equal(1, summary.GetProperty("effectsExecuted").GetInt32());
        Assert.Equal(1, summary.GetProperty("duplicatesPrevented").GetInt32());
        Assert.Equal(1, summary.GetProperty("rejectedByValidation").GetInt32());

        // The embedded default: the state and the ledger live in the clone's .data folder.
        Assert.True(File.Exists(Path.Combine(this.clone, ".data", "orchestrator.db")));
        Assert.True(File.Exists(Path.Combine(this.clone, ".data", "orchestrator-payments.db")));
    }

    public void Dispose()
    {
        if (Directory.Exists(this.clone))
        {
            // git marks pack files read-only; clear that so the folder can go.
            foreach (string file in Directory.EnumerateFiles(this.clone, "*", SearchOption.AllDirectories))
            {
                File.SetAttributes(file, FileAttributes.Normal);
            }

            Directory.Delete(this.clone, recursive: true);
        }
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Orchestrator.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Orchestrator.sln not found above the test's folder.");
    }

    /// <summary>Runs a command to completion within <see cref="StepLimit"/> (the whole process tree is killed past it); fails on a non-zero exit.</summary>
    private static async Task<(int Code, string Stdout)> RunAsync(string workingDirectory, string fileName, params string[] args)
    {
        var start = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        // A new user has none of these; the test host may (CI, a developer's shell).
        foreach (string name in new[] { "AzureWebJobsStorage", "Model__Endpoint", "Model__ApiKey", "Model__Name", "Payments__BaseUrl", "MSBuildExtensionsPath", "MSBUILD_EXE_PATH", "MSBuildSDKsPath" })
        {
            start.Environment.Remove(name);
        }

        start.Environment["DOTNET_NOLOGO"] = "1";
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";

        using var process = Process.Start(start)!;
        process.StandardInput.Close();
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        Task readOut = Task.Run(async () => stdout.Append(await process.StandardOutput.ReadToEndAsync()));
        Task readErr = Task.Run(async () => stderr.Append(await process.StandardError.ReadToEndAsync()));
        using var limit = new CancellationTokenSource(StepLimit);
        try
        {
            await process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            throw new TimeoutException($"'{fileName} {string.Join(' ', args)}' took longer than {StepLimit}.\n{stdout}\n{stderr}");
        }

        await Task.WhenAll(readOut, readErr);
        Assert.True(process.ExitCode == 0, $"'{fileName} {string.Join(' ', args)}' exited {process.ExitCode}.\n{stdout}\n{stderr}");
        return (process.ExitCode, stdout.ToString());
    }
}
