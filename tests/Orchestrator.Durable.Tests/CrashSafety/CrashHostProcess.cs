using System.Diagnostics;
using System.Text;
using System.Threading.Channels;

namespace Orchestrator.Durable.Tests.CrashSafety;

/// <summary>
/// A crash host (tests/Orchestrator.Durable.CrashHost) running as a separate process, started with
/// <c>dotnet Orchestrator.Durable.CrashHost.dll</c> from the test output folder (the test project
/// references it, so the build puts the dll, its runtimeconfig and deps files there). Disposing kills
/// it if it still runs; its stdin is held open, so it also exits if the test runner dies.
/// </summary>
internal sealed class CrashHostProcess : IAsyncDisposable
{
    private readonly Process process;
    private readonly Channel<string> lines = Channel.CreateUnbounded<string>();
    private readonly StringBuilder transcript = new();

    private CrashHostProcess(Process process) => this.process = process;

    public static string HostDll => Path.Combine(AppContext.BaseDirectory, "Orchestrator.Durable.CrashHost.dll");

    public int ExitCode => this.process.ExitCode;

    public static CrashHostProcess Start(IEnumerable<string> arguments)
    {
        if (!File.Exists(HostDll) || !File.Exists(Path.ChangeExtension(HostDll, ".runtimeconfig.json")))
        {
            throw new InvalidOperationException($"The crash host is not in the test output folder ({HostDll}); the test project must reference it.");
        }

        var psi = new ProcessStartInfo(DotnetPath())
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        psi.ArgumentList.Add(HostDll);
        foreach (string a in arguments)
        {
            psi.ArgumentList.Add(a);
        }

        var process = new Process { StartInfo = psi };
        var host = new CrashHostProcess(process);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                host.lines.Writer.TryComplete();
                return;
            }

            host.Append("out", e.Data);
            host.lines.Writer.TryWrite(e.Data);
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                host.Append("err", e.Data);
            }
        };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return host;
    }

    /// <summary>Waits for the first stdout line starting with <paramref name="prefix"/>; returns the rest of it.</summary>
    public async Task<string> WaitForLineAsync(string prefix, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            while (await this.lines.Reader.WaitToReadAsync(cts.Token))
            {
                while (this.lines.Reader.TryRead(out string? line))
                {
                    if (line.StartsWith(prefix, StringComparison.Ordinal))
                    {
                        return line[prefix.Length..].Trim();
                    }
                }
            }
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
            throw new TimeoutException($"The crash host did not print '{prefix}' within {timeout}.\n{this.Transcript}");
        }

        throw new InvalidOperationException($"The crash host exited before printing '{prefix}'.\n{this.Transcript}");
    }

    /// <summary>Kills the process (and its children) for real and waits until it is gone.</summary>
    public async Task KillAsync()
    {
        if (!this.process.HasExited)
        {
            this.process.Kill(entireProcessTree: true);
        }

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await this.process.WaitForExitAsync(cts.Token);
    }

    /// <summary>Closes the host's stdin (its signal to stop gracefully) and waits for it to exit.</summary>
    public async Task<int> CloseInputAndWaitForExitAsync(TimeSpan timeout)
    {
        this.process.StandardInput.Close();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await this.process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
            throw new TimeoutException($"The crash host did not exit within {timeout} of its stdin closing.\n{this.Transcript}");
        }

        return this.process.ExitCode;
    }

    public string Transcript
    {
        get
        {
            lock (this.transcript)
            {
                return "--- crash host output ---\n" + this.transcript;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await this.KillAsync();
        }
        catch (InvalidOperationException)
        {
            // Never started.
        }

        this.process.Dispose();
    }

    private static string DotnetPath()
    {
        // The dotnet CLI tells child processes where its host is; otherwise use the one on PATH.
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } hostPath && File.Exists(hostPath))
        {
            return hostPath;
        }

        if (Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            return self;
        }

        return OperatingSystem.IsWindows() ? "dotnet.exe" : "dotnet";
    }

    private void Append(string stream, string line)
    {
        lock (this.transcript)
        {
            this.transcript.Append(stream).Append(": ").AppendLine(line);
        }
    }
}
