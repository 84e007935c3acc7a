using System.Text.RegularExpressions;

namespace Orchestrator.Durable.AzureStorage;

/// <summary>
/// The endpoints of the three storage services the backend uses, for an identity-based connection
/// (<see cref="AzureStorageOrchestrationBackendOptions.ServiceUris"/>). Each must be an absolute <c>https</c> URI:
/// the storage client libraries send a bearer token over TLS only.
/// </summary>
/// <param name="BlobServiceUri">The blob service, e.g. <c>https://myaccount.blob.core.windows.net</c>.</param>
/// <param name="QueueServiceUri">The queue service, e.g. <c>https://myaccount.queue.core.windows.net</c>.</param>
/// <param name="TableServiceUri">The table service, e.g. <c>https://myaccount.table.core.windows.net</c>.</param>
public sealed partial record AzureStorageServiceUris(Uri BlobServiceUri, Uri QueueServiceUri, Uri TableServiceUri)
{
    /// <summary>The public-cloud endpoints of an account: <c>https://{accountName}.blob|queue|table.core.windows.net</c>.</summary>
    /// <exception cref="ArgumentException">The name is not a storage account name (3-24 lower-case letters and digits).</exception>
    public static AzureStorageServiceUris ForAccount(string accountName)
    {
        if (accountName is null || !AccountNamePattern().IsMatch(accountName))
        {
            throw new ArgumentException($"'{accountName}' is not a storage account name: use 3-24 lower-case letters and digits.", nameof(accountName));
        }

        return new AzureStorageServiceUris(
            new Uri($"https://{accountName}.blob.core.windows.net"),
            new Uri($"https://{accountName}.queue.core.windows.net"),
            new Uri($"https://{accountName}.table.core.windows.net"));
    }

    /// <summary>Checks that each endpoint is an absolute https URI.</summary>
    /// <exception cref="ArgumentException">An endpoint is missing, relative or not https.</exception>
    public void Validate()
    {
        Check(this.BlobServiceUri, "blobServiceUri");
        Check(this.QueueServiceUri, "queueServiceUri");
        Check(this.TableServiceUri, "tableServiceUri");
    }

    [GeneratedRegex("^[a-z0-9]{3,24}$")]
    private static partial Regex AccountNamePattern();

    private static void Check(Uri? uri, string name)
    {
        if (uri is null || !uri.IsAbsoluteUri || uri.Scheme != Uri.UriSchemeHttps)
        {
            throw new ArgumentException(
                $"ServiceUris {name} (setting '{AzureStorageOrchestrationBackendOptions.ConnectionStringSetting}__{name}') must be an absolute https URI; it is '{uri}'.",
                name);
        }
    }
}
