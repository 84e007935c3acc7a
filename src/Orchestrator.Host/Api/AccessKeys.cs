using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace Orchestrator.Host.Api;

/// <summary>
/// Who may read and steer what. The management key (header <c>x-management-key</c>) grants everything. A conversation's
/// access token, HMAC-SHA256 of its id under a key derived from the management key, grants that conversation only; it is
/// handed out in the 202 response that starts the conversation and travels as <c>?token=</c> or header
/// <c>x-conversation-token</c>. Every comparison is constant-time. Thread-safe.
/// </summary>
/// <remarks>
/// Tokens are derived, not stored: they stay valid as long as the management key stays the same. Changing the key
/// revokes every token at once; a generated key (none configured) lasts one process.
/// </remarks>
internal sealed class AccessKeys
{
    public const string ManagementKeyHeader = "x-management-key";
    public const string ConversationTokenHeader = "x-conversation-token";
    public const string ConversationTokenQuery = "token";

    private readonly byte[] managementKeyHash;
    private readonly byte[] tokenKey;

    public AccessKeys(string managementKey)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(managementKey);
        byte[] key = Encoding.UTF8.GetBytes(managementKey);
        this.managementKeyHash = SHA256.HashData(key);
        this.tokenKey = HMACSHA256.HashData(key, "orchestrator/conversation-token/v1"u8);
    }

    /// <summary>A fresh random management key (32 bytes, base64url).</summary>
    public static string GenerateKey() => Base64Url(RandomNumberGenerator.GetBytes(32));

    /// <summary>The access token of <paramref name="conversationId"/>.</summary>
    public string TokenFor(string conversationId) =>
        Base64Url(HMACSHA256.HashData(this.tokenKey, Encoding.UTF8.GetBytes("conversation:" + conversationId)));

    /// <summary>True when the request carries the management key.</summary>
    public bool IsManagement(HttpContext context)
    {
        string? presented = context.Request.Headers[ManagementKeyHeader];
        // Hashing both sides first makes the comparison constant-time whatever the presented length.
        return presented is not null
            && CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(presented)), this.managementKeyHash);
    }

    /// <summary>Whether the request presents any credential at all (to tell 401 from 403).</summary>
    public static bool PresentsCredentials(HttpContext context) =>
        context.Request.Headers.ContainsKey(ManagementKeyHeader)
        || context.Request.Headers.ContainsKey(ConversationTokenHeader)
        || context.Request.Query.ContainsKey(ConversationTokenQuery);

    /// <summary>True when the request carries the management key or <paramref name="conversationId"/>'s token.</summary>
    public bool CanAccessConversation(HttpContext context, string conversationId)
    {
        if (this.IsManagement(context))
        {
            return true;
        }

        string? presented = context.Request.Headers[ConversationTokenHeader].FirstOrDefault() ?? context.Request.Query[ConversationTokenQuery].FirstOrDefault();
        if (presented is null)
        {
            return false;
        }

        byte[] expected = SHA256.HashData(Encoding.UTF8.GetBytes(this.TokenFor(conversationId)));
        return CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(presented)), expected);
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
