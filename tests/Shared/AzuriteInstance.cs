using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Orchestrator.Testing;

/// <summary>
/// The Azurite a test run or benchmark uses: the one named by AZURITE_CONNECTION_STRING, else one
/// already listening on the default ports 10000-10002, else a private instance started here
/// (node_modules/.bin/azurite above the executable or the current directory) on free ports with a
/// temporary data folder, stopped and deleted on dispose. Compiled into the Azure Storage tests and
/// the benchmark, so both follow the same rules. <see cref="StartHttpsOAuthAsync"/> always starts a
/// private instance serving HTTPS with a given certificate and accepting OAuth bearer tokens.
/// </summary>
internal sealed class AzuriteInstance : IDisposable
{
    private const string Key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private Process? process;
    private string? dataDir;

    private AzuriteInstance()
    {
    }

    public string ConnectionString { get; private set; } = string.Empty;

    public string Description { get; private set; } = string.Empty;

    /// <summary>The blob, queue and table endpoints (account devstoreaccount1) of a private instance; null for one found running.</summary>
    public (Uri Blob, Uri Queue, Uri Table)? ServiceUris { get; private set; }

    public static string ConnectionStringFor(int blob, int queue, int table) =>
        $"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={Key};"
        + $"BlobEndpoint=http://127.0.0.1:{blob}/devstoreaccount1;QueueEndpoint=http://127.0.0.1:{queue}/devstoreaccount1;TableEndpoint=http://127.0.0.1:{table}/devstoreaccount1;";

    /// <summary>Finds or starts Azurite.</summary>
    /// <exception cref="FileNotFoundException">Azurite is not installed (run npm ci).</exception>
    /// <exception cref="InvalidOperationException">A private Azurite did not start listening.</exception>
    public static async Task<AzuriteInstance> AcquireAsync(string dataDirPrefix, CancellationToken cancellationToken)
    {
        var instance = new AzuriteInstance();
        try
        {
            await instance.InitializeAsync(dataDirPrefix, cancellationToken).ConfigureAwait(false);
            return instance;
        }
        catch
        {
            instance.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Starts a private Azurite serving HTTPS with <paramref name="certificate"/> (which must hold its private key;
    /// written as PEM into the instance's data folder) and <c>--oauth basic</c>: bearer tokens are accepted when their
    /// audience, issuer and lifetime are valid (their signature is not checked); shared-key requests still work.
    /// </summary>
    /// <exception cref="FileNotFoundException">Azurite is not installed (run npm ci).</exception>
    /// <exception cref="InvalidOperationException">Azurite did not start listening.</exception>
    public static async Task<AzuriteInstance> StartHttpsOAuthAsync(string dataDirPrefix, X509Certificate2 certificate, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        var instance = new AzuriteInstance();
        try
        {
            instance.dataDir = Directory.CreateTempSubdirectory(dataDirPrefix).FullName;
            string certPath = Path.Combine(instance.dataDir, "cert.pem");
            string keyPath = Path.Combine(instance.dataDir, "key.pem");
            File.WriteAllText(certPath, certificate.ExportCertificatePem());
            AsymmetricAlgorithm key = (AsymmetricAlgorithm?)certificate.GetRSAPrivateKey() ?? certificate.GetECDsaPrivateKey()
                ?? throw new ArgumentException("The certificate has no RSA or ECDSA private key.", nameof(certificate));
            using (key)
            {
                File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
            }

            await instance.StartPrivateAsync("https", ["--cert", certPath, "--key", keyPath, "--oauth", "basic"], cancellationToken).ConfigureAwait(false);
            return instance;
        }
        catch
        {
            instance.Dispose();
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

    private async Task InitializeAsync(string dataDirPrefix, CancellationToken cancellationToken)
    {
        string? fromEnv = Environment.GetEnvironmentVariable("AZURITE_CONNECTION_STRING");
        if (!string.IsNullOrWhiteSpace(fromEnv))
        {
            this.ConnectionString = fromEnv;
            this.Description = "AZURITE_CONNECTION_STRING";
            return;
        }

        if (await AllAnswerAsync(10000, 10001, 10002).ConfigureAwait(false))
        {
            this.ConnectionString = "UseDevelopmentStorage=true";
            this.Description = "Azurite on the default ports";
            return;
        }

        this.dataDir = Directory.CreateTempSubdirectory(dataDirPrefix).FullName;
        await this.StartPrivateAsync("http", [], cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Starts Azurite in <see cref="dataDir"/> (already created) on free ports.</summary>
    private async Task StartPrivateAsync(string scheme, string[] extraArguments, CancellationToken cancellationToken)
    {
        string bin = FindAzurite()
            ?? throw new FileNotFoundException("Azurite is not installed (node_modules/.bin/azurite not found above the executable or the current directory): run 'npm ci' at the repository root, start Azurite on ports 10000-10002, or set AZURITE_CONNECTION_STRING.");
        string location = this.dataDir ?? throw new InvalidOperationException("The data folder must be created first.");
        int blob = FreePort(), queue = FreePort(), table = FreePort();
        var psi = new ProcessStartInfo(bin) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in new[]
        {
            "--silent", "--loose", "--skipApiVersionCheck", "--location", location,
            "--blobHost", "127.0.0.1", "--blobPort", Port(blob), "--queueHost", "127.0.0.1", "--queuePort", Port(queue),
            "--tableHost", "127.0.0.1", "--tablePort", Port(table),
        }.Concat(extraArguments))
        {
            psi.ArgumentList.Add(a);
        }

        this.process = Process.Start(psi) ?? throw new InvalidOperationException("Azurite did not start.");
        this.process.OutputDataReceived += (_, _) => { };
        this.process.ErrorDataReceived += (_, _) => { };
        this.process.BeginOutputReadLine();
        this.process.BeginErrorReadLine();

        // A bounded wait for the ports to answer: a process start has no other readiness signal.
        var sw = Stopwatch.StartNew();
        while (!await AllAnswerAsync(blob, queue, table).ConfigureAwait(false))
        {
            if (this.process.HasExited || sw.Elapsed > StartTimeout)
            {
                throw new InvalidOperationException($"Azurite ({bin}) did not start listening within {sw.Elapsed.TotalSeconds:0} s (exited: {this.process.HasExited}).");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), TimeProvider.System, cancellationToken).ConfigureAwait(false);
        }

        this.ConnectionString = ConnectionStringFor(blob, queue, table).Replace("http", scheme, StringComparison.Ordinal);
        this.ServiceUris = (ServiceUri(scheme, blob), ServiceUri(scheme, queue), ServiceUri(scheme, table));
        this.Description = $"private Azurite (pid {this.process.Id}, {scheme}{(extraArguments.Length > 0 ? " " + string.Join(' ', extraArguments.Where(a => !a.Contains('/', StringComparison.Ordinal))) : string.Empty)}) on ports {blob}/{queue}/{table}";
    }

    private static Uri ServiceUri(string scheme, int port) => new($"{scheme}://127.0.0.1:{Port(port)}/devstoreaccount1");

    private static string Port(int port) => port.ToString(CultureInfo.InvariantCulture);

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

    private static async Task<bool> AllAnswerAsync(params int[] ports)
    {
        foreach (int port in ports)
        {
            using var client = new TcpClient();
            try
            {
                using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
                await client.ConnectAsync(IPAddress.Loopback, port, cts.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException)
            {
                return false;
            }
        }

        return true;
    }
}
