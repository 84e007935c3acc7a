using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Orchestrator.Bench;

/// <summary>
/// The Azurite the azurite backend runs against: the one named by AZURITE_CONNECTION_STRING, else one
/// already listening on the default ports 10000-10002, else a private instance started here
/// (node_modules/.bin/azurite at the repository root) on free ports with a temporary data folder,
/// stopped and deleted when disposed. Same rules as the AzureStorage tests' fixture.
/// </summary>
internal sealed class AzuriteHost : IDisposable
{
    private const string Key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private Process? process;
    private string? dataDir;

    private AzuriteHost()
    {
    }

    public string ConnectionString { get; private set; } = string.Empty;

    public string Description { get; private set; } = string.Empty;

    public static async Task<AzuriteHost> StartAsync(CancellationToken cancellationToken)
    {
        var host = new AzuriteHost();
        try
        {
            await host.InitializeAsync(cancellationToken).ConfigureAwait(false);
            return host;
        }
        catch
        {
            host.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        if (this.process is { HasExited: false })
        {
            this.process.Kill(entireProcessTree: true);
            this.process.WaitForExit(10_000);
        }

        this.process?.Dispose();
        this.process = null;
        if (this.dataDir is not null)
        {
            try
            {
                Directory.Delete(this.dataDir, recursive: true);
            }
            catch (IOException)
            {
                // Best effort: a temp folder.
            }

            this.dataDir = null;
        }
    }

    private static string ConnectionStringFor(int blob, int queue, int table) =>
        $"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={Key};"
        + $"BlobEndpoint=http://127.0.0.1:{blob}/devstoreaccount1;QueueEndpoint=http://127.0.0.1:{queue}/devstoreaccount1;TableEndpoint=http://127.0.0.1:{table}/devstoreaccount1;";

    private async Task InitializeAsync(CancellationToken cancellationToken)
    {
        string? fromEnv = Environment.GetEnvironmentVariable("AZURITE_CONNECTION_STRING");
        if (!string.IsNullOrWhiteSpace(fromEnv))
        {
            this.ConnectionString = fromEnv;
            this.Description = "AZURITE_CONNECTION_STRING";
            return;
        }

        if (await AnswersAsync(10000).ConfigureAwait(false) && await AnswersAsync(10001).ConfigureAwait(false) && await AnswersAsync(10002).ConfigureAwait(false))
        {
            this.ConnectionString = "UseDevelopmentStorage=true";
            this.Description = "Azurite on the default ports";
            return;
        }

        string bin = FindAzurite()
            ?? throw new UsageException("Azurite is not installed (node_modules/.bin/azurite not found above the bench or the current directory): run 'npm ci' at the repository root, start Azurite on ports 10000-10002, or set AZURITE_CONNECTION_STRING.");
        int blob = FreePort(), queue = FreePort(), table = FreePort();
        this.dataDir = Directory.CreateTempSubdirectory("azurite-bench-").FullName;
        var psi = new ProcessStartInfo(bin)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (string a in new[]
        {
            "--silent", "--loose", "--skipApiVersionCheck", "--location", this.dataDir,
            "--blobHost", "127.0.0.1", "--blobPort", Port(blob), "--queueHost", "127.0.0.1", "--queuePort", Port(queue),
            "--tableHost", "127.0.0.1", "--tablePort", Port(table),
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
        while (!(await AnswersAsync(blob).ConfigureAwait(false) && await AnswersAsync(queue).ConfigureAwait(false) && await AnswersAsync(table).ConfigureAwait(false)))
        {
            if (this.process.HasExited || sw.Elapsed > StartTimeout)
            {
                throw new BenchFailedException($"Azurite ({bin}) did not start listening within {sw.Elapsed.TotalSeconds:0} s (exited: {this.process.HasExited}).");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), TimeProvider.System, cancellationToken).ConfigureAwait(false);
        }

        this.ConnectionString = ConnectionStringFor(blob, queue, table);
        this.Description = $"private Azurite (pid {this.process.Id}) on ports {blob}/{queue}/{table}";
    }

    private static string Port(int port) => port.ToString(CultureInfo.InvariantCulture);

    /// <summary>node_modules/.bin/azurite in the nearest folder above the executable or the current directory that has it.</summary>
    private static string? FindAzurite()
    {
        foreach (string start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                string bin = Path.Combine(dir.FullName, "node_modules", ".bin", "azurite");
                if (File.Exists(bin))
                {
                    return bin;
                }
            }
        }

        return null;
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
            await client.ConnectAsync(IPAddress.Loopback, port, cts.Token).ConfigureAwait(false);
            return true;
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException)
        {
            return false;
        }
    }
}
