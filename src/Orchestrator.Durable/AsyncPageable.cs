using System.Runtime.CompilerServices;

namespace Orchestrator.Durable;

/// <summary>
/// Every value of a paged query, fetched a page at a time as it is enumerated. Enumerate it for the values,
/// or call <see cref="AsPages"/> for the pages with their continuation tokens (to resume later).
/// </summary>
/// <remarks>Nothing is fetched until enumeration starts; each enumeration runs the query again from its start token.</remarks>
/// <typeparam name="T">The value type.</typeparam>
public sealed class AsyncPageable<T> : IAsyncEnumerable<T>
{
    private readonly Func<string?, int?, CancellationToken, Task<Page<T>>> fetchPage;

    /// <summary>Creates a pageable from a function that fetches the page after a continuation token (null: the first), with an optional page size.</summary>
    public AsyncPageable(Func<string?, int?, CancellationToken, Task<Page<T>>> fetchPage)
    {
        ArgumentNullException.ThrowIfNull(fetchPage);
        this.fetchPage = fetchPage;
    }

    /// <summary>The pages, starting after <paramref name="continuationToken"/> (null: from the start), until one has no continuation token.</summary>
    /// <param name="continuationToken">A token from an earlier page of the same query, to resume there.</param>
    /// <param name="pageSizeHint">The page size; null keeps the query's.</param>
    public IAsyncEnumerable<Page<T>> AsPages(string? continuationToken = null, int? pageSizeHint = null) =>
        this.PagesAsync(continuationToken, pageSizeHint, CancellationToken.None);

    /// <inheritdoc/>
    public async IAsyncEnumerator<T> GetAsyncEnumerator(CancellationToken cancellationToken = default)
    {
        await foreach (Page<T> page in this.PagesAsync(null, null, cancellationToken).ConfigureAwait(false))
        {
            foreach (T value in page.Values)
            {
                yield return value;
            }
        }
    }

    private async IAsyncEnumerable<Page<T>> PagesAsync(string? continuationToken, int? pageSizeHint, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        string? token = continuationToken;
        do
        {
            Page<T> page = await this.fetchPage(token, pageSizeHint, cancellationToken).ConfigureAwait(false);
            yield return page;
            token = page.ContinuationToken;
        }
        while (token is not null);
    }
}
