using System.Security.Cryptography;
using System.Text;

namespace Orchestrator.Host.Api;

/// <summary>A response kept for a key, returned again to a retry.</summary>
/// <param name="Status">The HTTP status.</param>
/// <param name="Body">The JSON body.</param>
/// <param name="Location">The Location header, when there was one.</param>
// WARNING: persisted (SQLite row / table entity); change only compatibly.
internal sealed record StoredResponse(int Status, string Body, string? Location);

/// <summary>What a claim on a key found.</summary>
internal enum ClaimKind
{
    /// <summary>The key was new: the caller does the work, then completes or releases the claim.</summary>
    Began = 0,

    /// <summary>An earlier claim on the key was left unfinished longer than the lease (its holder died): the caller does the work again.</summary>
    TookOver = 1,

    /// <summary>The key is done: <see cref="LedgerClaim.Response"/> is the first response.</summary>
    Completed = 2,

    /// <summary>The key was used for a different request.</summary>
    Mismatch = 3,

    /// <summary>Another request with the key is being handled now.</summary>
    InProgress = 4,
}

/// <summary>The result of <see cref="IRequestLedger.ClaimAsync"/>.</summary>
internal sealed record LedgerClaim(ClaimKind Kind, StoredResponse? Response = null);

/// <summary>How long the ledger keeps a key, by kind: a conversation's message keys and the confirmation webhook's ids.</summary>
/// <param name="Messages">An <c>Idempotency-Key</c> or queue <c>messageId</c> (scopes <c>messages:{conversationId}</c>).</param>
/// <param name="Webhooks">A <c>webhook-id</c> (scope <see cref="LedgerRetention.WebhookScope"/>).</param>
internal sealed record LedgerRetention(TimeSpan Messages, TimeSpan Webhooks)
{
    /// <summary>The scope of the confirmation webhook's ids.</summary>
    public const string WebhookScope = "webhook:confirmation";

    /// <summary>24 hours for message keys (as Stripe keeps idempotency keys); one hour for webhook ids (twice the timestamp tolerance would do).</summary>
    public static LedgerRetention Default { get; } = new(TimeSpan.FromHours(24), TimeSpan.FromHours(1));

    /// <summary>How long a key of <paramref name="scope"/> is kept.</summary>
    public TimeSpan For(string scope) => scope == WebhookScope ? this.Webhooks : this.Messages;
}

/// <summary>
/// Durable deduplication of requests by key (an <c>Idempotency-Key</c>, a queue message id, a <c>webhook-id</c>), the
/// way payment APIs do it: the first request with a key claims it with an insert-if-absent, does its work and stores
/// its response; a retry with the same key and the same request gets that response and does nothing; the same key
/// with a different request is refused.
/// </summary>
/// <remarks>
/// A claim whose holder dies before completing stays "in progress" for <see cref="Lease"/>, then a retry takes it
/// over and does the work again. The work must therefore tolerate a second attempt after a crash (sending a user
/// message twice is then possible in that window only: at-least-once, never a lost acknowledged request).
/// A key is kept for its kind's <see cref="LedgerRetention"/>, counted from its claim: past it the key reads as absent
/// (a request with it is new again, as with Stripe's 24-hour keys) and <see cref="DeleteExpiredAsync"/> removes the row.
/// </remarks>
internal interface IRequestLedger : IAsyncDisposable
{
    /// <summary>How long an unfinished claim blocks others.</summary>
    static TimeSpan Lease => TimeSpan.FromMinutes(1);

    /// <summary>Creates the store if needed.</summary>
    Task InitializeAsync(CancellationToken cancellationToken);

    /// <summary>Claims <paramref name="key"/> in <paramref name="scope"/> for a request whose content hashes to <paramref name="requestHash"/>.</summary>
    Task<LedgerClaim> ClaimAsync(string scope, string key, string requestHash, CancellationToken cancellationToken);

    /// <summary>Stores the response of a claimed key: later claims get it.</summary>
    Task CompleteAsync(string scope, string key, StoredResponse response, CancellationToken cancellationToken);

    /// <summary>Drops an unfinished claim (the work failed and may be retried with the same key).</summary>
    Task ReleaseAsync(string scope, string key, CancellationToken cancellationToken);

    /// <summary>Forgets every key of <paramref name="scope"/> (a purged conversation's ids may be used again).</summary>
    Task ForgetScopeAsync(string scope, CancellationToken cancellationToken);

    /// <summary>
    /// Deletes at most <paramref name="maxRows"/> keys whose retention has passed (claimed that long ago, finished or not).
    /// The caller repeats while a full batch was deleted, so no pass holds a long write lock.
    /// </summary>
    /// <returns>How many were deleted.</returns>
    Task<int> DeleteExpiredAsync(int maxRows, CancellationToken cancellationToken);

    /// <summary>Throws when the store cannot be reached (readiness).</summary>
    Task CheckAsync(CancellationToken cancellationToken);
}

internal static class RequestHash
{
    /// <summary>Lowercase hex SHA-256 of <paramref name="parts"/> joined by a separator that cannot occur in them unescaped.</summary>
    public static string Of(params string?[] parts) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(string.Join('\u001f', parts.Select(p => p ?? "\u0000")))));
}
