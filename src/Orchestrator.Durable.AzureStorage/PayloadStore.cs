using System.Text;
using Azure;
using Azure.Data.Tables;
using Azure.Storage.Blobs;

namespace Orchestrator.Durable.AzureStorage;

/// <summary>
/// Keeps strings within the services' limits: splits them across table properties, and moves what
/// is too large for a row or a queue message to a blob, reading it back transparently.
/// </summary>
internal sealed class PayloadStore(BlobContainerClient container)
{
    /// <summary>Most characters in one table string property (the limit is 32K UTF-16 characters).</summary>
    public const int MaxPropertyChars = 30_000;

    /// <summary>
    /// Most characters kept in one row before the value goes to a blob: an entity is at most 1 MiB,
    /// and strings count two bytes per character, so 400,000 characters (~800 KB) leave a margin.
    /// </summary>
    public const int MaxRowChars = 400_000;

    /// <summary>Most UTF-8 bytes in a queue message body before it goes to a blob (the limit is 64 KiB).</summary>
    public const int MaxQueueMessageBytes = 48 * 1024;

    public BlobContainerClient Container => container;

    public static string InstancePrefix(string instanceId) => StorageNames.EscapeKey(instanceId) + "/";

    public async Task UploadAsync(string path, string content, CancellationToken cancellationToken) =>
        await container.GetBlobClient(path).UploadAsync(BinaryData.FromString(content), overwrite: true, cancellationToken).ConfigureAwait(false);

    public async Task<string> DownloadAsync(string path, CancellationToken cancellationToken)
    {
        Response<Azure.Storage.Blobs.Models.BlobDownloadResult> r = await container.GetBlobClient(path).DownloadContentAsync(cancellationToken).ConfigureAwait(false);
        return r.Value.Content.ToString();
    }

    public async Task DeleteAsync(string path, CancellationToken cancellationToken) =>
        await container.GetBlobClient(path).DeleteIfExistsAsync(cancellationToken: cancellationToken).ConfigureAwait(false);

    /// <summary>Deletes every blob of an instance (messages, history, instance fields).</summary>
    public async Task<int> DeleteInstanceBlobsAsync(string instanceId, CancellationToken cancellationToken)
    {
        int n = 0;
        string esc = StorageNames.EscapeKey(instanceId);
        foreach (string area in new[] { "messages", "history", "instances" })
        {
            var names = new List<string>();
            await foreach (Azure.Storage.Blobs.Models.BlobItem b in container.GetBlobsAsync(Azure.Storage.Blobs.Models.BlobTraits.None, Azure.Storage.Blobs.Models.BlobStates.None, $"{area}/{esc}/", cancellationToken).ConfigureAwait(false))
            {
                names.Add(b.Name);
            }

            foreach (string name in names)
            {
                await container.GetBlobClient(name).DeleteIfExistsAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
                n++;
            }
        }

        return n;
    }

    /// <summary>
    /// Stores a large string in a row: in properties <c>{name}0..{name}N</c> of up to 30,000
    /// characters, or, above <paramref name="maxRowChars"/>, in a blob named in <c>{name}Blob</c>.
    /// A null value writes an empty count, so merges clear old values.
    /// </summary>
    public async Task SetLargeAsync(TableEntity entity, string name, string? value, string blobPath, int maxRowChars, CancellationToken cancellationToken)
    {
        if (value is null)
        {
            entity[name + "Count"] = -1;
            entity[name + "Blob"] = string.Empty;
            return;
        }

        if (value.Length > maxRowChars)
        {
            await this.UploadAsync(blobPath, value, cancellationToken).ConfigureAwait(false);
            entity[name + "Count"] = 0;
            entity[name + "Blob"] = blobPath;
            return;
        }

        int parts = Math.Max(1, (value.Length + MaxPropertyChars - 1) / MaxPropertyChars);
        for (int i = 0; i < parts; i++)
        {
            int start = i * MaxPropertyChars;
            entity[name + i.ToString(System.Globalization.CultureInfo.InvariantCulture)] = value.Substring(start, Math.Min(MaxPropertyChars, value.Length - start));
        }

        entity[name + "Count"] = parts;
        entity[name + "Blob"] = string.Empty;
    }

    /// <summary>Reads what <see cref="SetLargeAsync"/> wrote; null when the value is null or absent.</summary>
    public async Task<string?> GetLargeAsync(TableEntity entity, string name, CancellationToken cancellationToken)
    {
        int count = entity.GetInt32(name + "Count") ?? -1;
        string? blob = entity.GetString(name + "Blob");
        if (!string.IsNullOrEmpty(blob))
        {
            return await this.DownloadAsync(blob, cancellationToken).ConfigureAwait(false);
        }

        if (count < 0)
        {
            return null;
        }

        if (count == 1)
        {
            return entity.GetString(name + "0");
        }

        var sb = new StringBuilder();
        for (int i = 0; i < count; i++)
        {
            sb.Append(entity.GetString(name + i.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }

        return sb.ToString();
    }
}
