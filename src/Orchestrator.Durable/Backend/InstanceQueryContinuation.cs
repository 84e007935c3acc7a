using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Orchestrator.Durable.Backend;

/// <summary>
/// The continuation tokens of <see cref="IOrchestrationBackend.QueryInstancesAsync"/>, for backend authors:
/// a token names the backend, the query's filter and the last key returned, so the next page is the rows
/// whose key is greater (keyset paging, stable while instances are created and deleted between pages).
/// </summary>
/// <remarks>
/// To callers the token is opaque. It is bound to the backend kind and to the filter (statuses, created
/// range, prefix) it was issued for; page size and <see cref="InstanceQuery.FetchInputsAndOutputs"/> may
/// change between pages. Anything else is refused with an <see cref="ArgumentException"/>.
/// </remarks>
public static class InstanceQueryContinuation
{
    // WARNING: persisted format. Callers keep tokens (in a URL, a script, across a deploy), so a token of
    // version 1 must keep reading: base64url of {"v":1,"b":backend,"f":filter fingerprint,"k":last key}.
    // A change of shape gets a new version number and a test that the old fixture still reads.
    private const int Version = 1;

    /// <summary>Makes the token that continues after <paramref name="lastKey"/>.</summary>
    /// <param name="backend">A short name of the backend kind (a token from another kind is refused).</param>
    /// <param name="query">The query the page answered.</param>
    /// <param name="lastKey">The backend's key of the last row returned, in the backend's key order.</param>
    public static string Create(string backend, InstanceQuery query, string lastKey)
    {
        ArgumentException.ThrowIfNullOrEmpty(backend);
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(lastKey);
        var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteNumber("v", Version);
            w.WriteString("b", backend);
            w.WriteString("f", Fingerprint(query));
            w.WriteString("k", lastKey);
            w.WriteEndObject();
        }

        return Convert.ToBase64String(buffer.ToArray()).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }

    /// <summary>
    /// The key after which the query continues: null when it has no continuation token (the first page).
    /// </summary>
    /// <exception cref="ArgumentException">The token is malformed, from another backend kind, or from a query with another filter.</exception>
    public static string? ReadLastKey(string backend, InstanceQuery query)
    {
        ArgumentException.ThrowIfNullOrEmpty(backend);
        ArgumentNullException.ThrowIfNull(query);
        string? token = query.ContinuationToken;
        if (token is null)
        {
            return null;
        }

        const string Param = nameof(InstanceQuery.ContinuationToken);
        byte[] bytes;
        try
        {
            string b64 = token.Replace('-', '+').Replace('_', '/');
            bytes = Convert.FromBase64String(b64.PadRight(b64.Length + ((4 - (b64.Length % 4)) % 4), '='));
        }
        catch (FormatException)
        {
            throw new ArgumentException("The continuation token is malformed; pass back the ContinuationToken of a page exactly as returned, or null for the first page.", Param);
        }

        int? version = null;
        string? kind = null, filter = null, key = null;
        try
        {
            using var doc = JsonDocument.Parse(bytes);
            JsonElement root = doc.RootElement;
            if (root.ValueKind == JsonValueKind.Object)
            {
                version = root.TryGetProperty("v", out JsonElement v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int n) ? n : null;
                kind = root.TryGetProperty("b", out JsonElement b) && b.ValueKind == JsonValueKind.String ? b.GetString() : null;
                filter = root.TryGetProperty("f", out JsonElement f) && f.ValueKind == JsonValueKind.String ? f.GetString() : null;
                key = root.TryGetProperty("k", out JsonElement k) && k.ValueKind == JsonValueKind.String ? k.GetString() : null;
            }
        }
        catch (JsonException)
        {
            // Falls through to the malformed-token error below.
        }

        if (version is null || kind is null || filter is null || key is null)
        {
            throw new ArgumentException("The continuation token is malformed; pass back the ContinuationToken of a page exactly as returned, or null for the first page.", Param);
        }

        if (version != Version)
        {
            throw new ArgumentException($"The continuation token has version {version.Value.ToString(CultureInfo.InvariantCulture)}, which this version does not read; start the query again without a token.", Param);
        }

        if (!string.Equals(kind, backend, StringComparison.Ordinal))
        {
            throw new ArgumentException($"The continuation token was issued by the {kind} backend, not this {backend} backend; start the query again without a token.", Param);
        }

        if (!string.Equals(filter, Fingerprint(query), StringComparison.Ordinal))
        {
            throw new ArgumentException("The continuation token belongs to a query with another filter (statuses, created range or instance id prefix); keep the filter while paging, or start again without a token.", Param);
        }

        return key;
    }

    /// <summary>A short hash of the filter, independent of the order statuses are listed in.</summary>
    private static string Fingerprint(InstanceQuery query)
    {
        string statuses = query.Statuses is { Count: > 0 } s
            ? string.Join(",", s.Distinct().Select(x => x.ToString()).Order(StringComparer.Ordinal))
            : "*";
        string text = string.Join(
            "\n",
            statuses,
            query.CreatedFrom?.UtcTicks.ToString(CultureInfo.InvariantCulture) ?? "-",
            query.CreatedTo?.UtcTicks.ToString(CultureInfo.InvariantCulture) ?? "-",
            string.IsNullOrEmpty(query.InstanceIdPrefix) ? "-" : "p:" + query.InstanceIdPrefix);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)), 0, 8);
    }
}
