namespace Orchestrator.Host.Api;

/// <summary>Options of the serve command.</summary>
internal sealed record ServeCommandOptions(IReadOnlyList<string> Urls, string? DataSource)
{
    public static ServeCommandOptions Parse(ReadOnlySpan<string> args)
    {
        var urls = new List<string>();
        string? db = null;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--urls":
                    string value = i + 1 < args.Length ? args[++i] : throw new ArgumentException("--urls needs a value, e.g. http://127.0.0.1:7071 (several separated by ';').");
                    urls.AddRange(value.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
                    break;
                case "--db":
                    db = i + 1 < args.Length ? args[++i] : throw new ArgumentException("--db needs a path.");
                    break;
                default:
                    throw new ArgumentException($"Unknown serve option '{args[i]}'.");
            }
        }

        return new ServeCommandOptions(urls.Count == 0 ? [ServeOptions.DefaultUrl] : urls, db);
    }
}

/// <summary><c>serve</c>: runs the HTTP API, the worker and the queue trigger until Ctrl+C.</summary>
internal static class ServeCommand
{
    public static async Task<int> RunAsync(ServeCommandOptions options, HostSettings settings, ApiSettings api, TextWriter stdout, CancellationToken cancellationToken)
    {
        await using ServeHost host = await ServeHost.StartAsync(
            new ServeOptions { Settings = settings, Api = api, Urls = options.Urls, DataSource = options.DataSource },
            cancellationToken).ConfigureAwait(false);
        await stdout.WriteLineAsync($"Listening on {string.Join(", ", host.Addresses)}. {settings.Describe(options.DataSource)}.").ConfigureAwait(false);
        if (host.KeyGenerated)
        {
            // Printed once, here, never logged: it grants every conversation. Configure Management:Key to keep one across restarts.
            await stdout.WriteLineAsync($"No Management:Key configured: generated one for this process (loopback only). x-management-key: {host.ManagementKey}").ConfigureAwait(false);
        }

        await stdout.WriteLineAsync(api.WebhookSecrets.Count == 0
            ? "No Webhooks:ConfirmationSecrets configured: the confirmation webhook refuses every delivery."
            : $"Confirmation webhook: {api.WebhookSecrets.Count} secret(s).").ConfigureAwait(false);
        if (api.QueueName is not null)
        {
            await stdout.WriteLineAsync($"Queue trigger: {api.QueueName} (poison: {api.QueueName}-poison).").ConfigureAwait(false);
        }

        await stdout.WriteLineAsync("OpenAPI: /openapi/v1.json. Ctrl+C stops.").ConfigureAwait(false);
        await host.App.WaitForShutdownAsync(cancellationToken).ConfigureAwait(false);
        return 0;
    }
}
