using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Orchestrator.Durable.AzureStorage.Tests;

/// <summary>
/// Azurite for the tests: the one named by AZURITE_CONNECTION_STRING, else one already listening on
/// the default ports, else a private instance started here (node_modules/.bin/azurite at the
/// repository root) on free ports with a temporary data folder, stopped at the end.
/// </summary>
public sealed class AzuriteFixture : IAsyncLifetime
{
    private const string Key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
    private Process? process;
    private string? dataDir;

    public string ConnectionString { get; private set; } = string.Empty;

    public string Description { get; private set; } = string.Empty;

    public static string ConnectionStringFor(int blob, int queue, int table) =>
        $"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={Key};"
        + $"BlobEndpoint=http://127.0.0.1:{blob}/devstoreaccount1;QueueEndpoint=http://127.0.0.1:{queue}/devstoreaccount1;TableEndpoint=http://127.0.0.1:{table}/devstoreaccount1;";

    public async Task InitializeAsync()
    {
        string? fromEnv = Environment.GetEnvironmentVariable("AZURITE_CONNECTION_STRING");
        if (!string.IsNullOrWhiteSpace(fromEnv))
        {
            this.ConnectionString = fromEnv;
            this.Description = "AZURITE_CONNECTION_STRING";
            return;
        }

        if (await AnswersAsync(10000) && await AnswersAsync(10001) && await AnswersAsync(10002))
        {
            this.ConnectionString = "UseDevelopmentStorage=true";
            this.Description = "Azurite on the default ports";
            return;
        }

        string root = FindRepositoryRoot();
        string bin = Path.Combine(root, "node_modules", ".bin", "azurite");
        if (!File.Exists(bin))
        {
            throw new InvalidOperationException($"Azurite is not installed at {bin}: run 'npm ci' at the repository root, or set AZURITE_CONNECTION_STRING.");
        }

        int blob = FreePort(), queue = FreePort(), table = FreePort();
        this.dataDir = Directory.CreateTempSubdirectory("azurite-tests-").FullName;
        var psi = new ProcessStartInfo(bin)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (string a in new[]
        {
            "--silent", "--loose", "--skipApiVersionCheck", "--location", this.dataDir,
            "--blobHost", "127.0.0.1", "--blobPort", blob.ToString(), "--queueHost", "127.0.0.1", "--queuePort", queue.ToString(),
            "--tableHost", "127.0.0.1", "--tablePort", table.ToString(),
        })
        {
            psi.ArgumentList.Add(a);
        }

        this.process = Process.Start(psi) ?? throw new InvalidOperationException("Azurite did not start.");
        this.process.OutputDataReceived += (_, _) => { };
        this.process.ErrorDataReceived += (_, _) => { };
        this.process.BeginOutputReadLine();
        this.process.BeginErrorReadLine();
        var sw = Stopwatch.StartNew();
        while (!(await AnswersAsync(blob) && await AnswersAsync(queue) && await AnswersAsync(table)))
        {
            if (this.process.HasExited || sw.Elapsed > TimeSpan.FromSeconds(60))
            {
                throw new InvalidOperationException($"Azurite did not start listening within {sw.Elapsed} (exited: {this.process.HasExited}).");
            }

            await Task.Delay(100);
        }

        this.ConnectionString = ConnectionStringFor(blob, queue, table);
        this.Description = $"private Azurite (pid {this.process.Id}) on ports {blob}/{queue}/{table}";
    }

    public Task DisposeAsync()
    {
        if (this.process is { HasExited: false })
        {
            this.process.Kill(entireProcessTree: true);
            this.process.WaitForExit(10_000);
        }

        this.process?.Dispose();
        if (this.dataDir is not null)
        {
            try
            {
                Directory.Delete(this.dataDir, recursive: true);
            }
            catch (IOException)
            {
                // Best effort.
            }
        }

        return Task.CompletedTask;
    }

    public static string NewHubName(string tag)
    {
        string clean = new(tag.Where(char.IsLetterOrDigit).Take(12).ToArray());
        return "t" + clean + Guid.NewGuid().ToString("N")[..12];
    }

    private static string FindRepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Orchestrator.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("Orchestrator.sln not found above " + AppContext.BaseDirectory);
    }

    private static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    private static async Task<bool> AnswersAsync(int port)
    {
        using var client = new TcpClient();
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
            await client.ConnectAsync(IPAddress.Loopback, port, cts.Token);
            return true;
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException)
        {
            return false;
        }
    }
}

[CollectionDefinition(Name)]
public sealed class AzuriteCollection : ICollectionFixture<AzuriteFixture>
{
    public const string Name = "Azurite";
}
