using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Orchestrator.Host.Api;

/// <summary>Why a webhook delivery was refused, or that it was accepted.</summary>
internal enum WebhookVerification
{
    /// <summary>One of the signatures matches one of the secrets, within the tolerance.</summary>
    Valid = 0,

    /// <summary>A <c>webhook-id</c>, <c>webhook-timestamp</c> or <c>webhook-signature</c> header is missing or empty.</summary>
    MissingHeaders = 1,

    /// <summary>The timestamp is not an integer number of seconds.</summary>
    MalformedTimestamp = 2,

    /// <summary>The timestamp is more than the tolerance away from now, in either direction.</summary>
    TimestampOutOfTolerance = 3,

    /// <summary>No <c>v1</c> signature matches any configured secret.</summary>
    NoMatchingSignature = 4,
}

/// <summary>
/// Verifies deliveries signed as Standard Webhooks specifies: the signed content is <c>{webhook-id}.{webhook-timestamp}.{body}</c>,
/// the signature HMAC-SHA256 with the secret's bytes (the base64 after <c>whsec_</c>), sent as space-separated
/// <c>v1,{base64}</c> entries so a sender can sign with an old and a new secret during rotation. Thread-safe.
/// </summary>
/// <remarks>
/// Every comparison is constant-time. The timestamp must be within <see cref="Tolerance"/> of now both ways, which bounds
/// how long a captured delivery can be replayed; the caller deduplicates <c>webhook-id</c> within that window and beyond.
/// </remarks>
internal sealed class StandardWebhookVerifier
{
    /// <summary>How far a timestamp may be from now, either way: five minutes, as the specification recommends.</summary>
    public static readonly TimeSpan Tolerance = TimeSpan.FromMinutes(5);

    private const string SecretPrefix = "whsec_";
    private readonly byte[][] keys;
    private readonly TimeProvider time;

    /// <summary>Creates a verifier for <paramref name="secrets"/> (each <c>whsec_</c> + base64).</summary>
    /// <exception cref="ArgumentException">A secret is not <c>whsec_</c> + base64.</exception>
    public StandardWebhookVerifier(IEnumerable<string> secrets, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(secrets);
        this.keys = secrets.Select(s => TryDecodeSecret(s, out byte[] key) ? key : throw new ArgumentException("A webhook secret is not whsec_<base64>.", nameof(secrets))).ToArray();
        this.time = time ?? throw new ArgumentNullException(nameof(time));
    }

    /// <summary>True when at least one secret is configured; without one every delivery is refused.</summary>
    public bool IsConfigured => this.keys.Length > 0;

    /// <summary>Decodes <c>whsec_</c> + base64 to the key bytes.</summary>
    public static bool TryDecodeSecret(string secret, out byte[] key)
    {
        key = [];
        if (secret is null || !secret.StartsWith(SecretPrefix, StringComparison.Ordinal) || secret.Length == SecretPrefix.Length)
        {
            return false;
        }

        try
        {
            key = Convert.FromBase64String(secret[SecretPrefix.Length..]);
            return key.Length > 0;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    /// <summary>The <c>v1,{base64}</c> signature of one delivery with one secret (for senders and tests).</summary>
    public static string Sign(string secret, string webhookId, long timestamp, ReadOnlySpan<byte> body)
    {
        if (!TryDecodeSecret(secret, out byte[] key))
        {
            throw new ArgumentException("The webhook secret is not whsec_<base64>.", nameof(secret));
        }

        return "v1," + Convert.ToBase64String(Compute(key, webhookId, timestamp.ToString(CultureInfo.InvariantCulture), body));
    }

    /// <summary>Verifies one delivery.</summary>
    public WebhookVerification Verify(string? webhookId, string? timestamp, string? signatureHeader, ReadOnlySpan<byte> body)
    {
        if (string.IsNullOrEmpty(webhookId) || string.IsNullOrEmpty(timestamp) || string.IsNullOrEmpty(signatureHeader))
        {
            return WebhookVerification.MissingHeaders;
        }

        if (!long.TryParse(timestamp, NumberStyles.None, CultureInfo.InvariantCulture, out long seconds))
        {
            return WebhookVerification.MalformedTimestamp;
        }

        long now = this.time.GetUtcNow().ToUnixTimeSeconds();
        if (Math.Abs(now - seconds) > (long)Tolerance.TotalSeconds)
        {
            return WebhookVerification.TimestampOutOfTolerance;
        }

        Span<byte> candidate = stackalloc byte[32];
        foreach (byte[] key in this.keys)
        {
            byte[] expected = Compute(key, webhookId, timestamp, body);
            foreach (string entry in signatureHeader.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                // Other versions (v1a: asymmetric) are skipped, not errors: a sender may send several kinds.
                if (!entry.StartsWith("v1,", StringComparison.Ordinal))
                {
                    continue;
                }

                if (Convert.TryFromBase64String(entry[3..], candidate, out int written) && written == expected.Length
                    && CryptographicOperations.FixedTimeEquals(candidate[..written], expected))
                {
                    return WebhookVerification.Valid;
                }
            }
        }

        return WebhookVerification.NoMatchingSignature;
    }

    private static byte[] Compute(byte[] key, string webhookId, string timestamp, ReadOnlySpan<byte> body)
    {
        byte[] prefix = Encoding.UTF8.GetBytes($"{webhookId}.{timestamp}.");
        byte[] content = new byte[prefix.Length + body.Length];
        prefix.CopyTo(content, 0);
        body.CopyTo(content.AsSpan(prefix.Length));
        return HMACSHA256.HashData(key, content);
    }
}
