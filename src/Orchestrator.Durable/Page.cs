using System.Collections;

namespace Orchestrator.Durable;

/// <summary>
/// One page of a paged query: its values, in the query's order, and the token that continues after them.
/// </summary>
/// <remarks>
/// The page is also a read-only list of its values, so code that only needs one page reads it as a list.
/// A page may be shorter than the page size (even empty) while <see cref="ContinuationToken"/> is set:
/// only a null token means the end.
/// </remarks>
/// <typeparam name="T">The value type.</typeparam>
public sealed class Page<T> : IReadOnlyList<T>
{
    /// <summary>Creates a page.</summary>
    public Page(IReadOnlyList<T> values, string? continuationToken)
    {
        ArgumentNullException.ThrowIfNull(values);
        this.Values = values;
        this.ContinuationToken = continuationToken;
    }

    /// <summary>The values of this page.</summary>
    public IReadOnlyList<T> Values { get; }

    /// <summary>
    /// Pass this in the next query (with the same filter) to read the next page; null when there is no next page.
    /// Opaque: its format is the backend's.
    /// </summary>
    public string? ContinuationToken { get; }

    /// <inheritdoc/>
    public int Count => this.Values.Count;

    /// <inheritdoc/>
    public T this[int index] => this.Values[index];

    /// <inheritdoc/>
    public IEnumerator<T> GetEnumerator() => this.Values.GetEnumerator();

    /// <inheritdoc/>
    IEnumerator IEnumerable.GetEnumerator() => this.GetEnumerator();
}
