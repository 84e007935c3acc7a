using Microsoft.ML.Tokenizers;
using Orchestrator.Agents.Models;

namespace Orchestrator.Agents;

/// <summary>
/// Fits a conversation into a token budget: system messages are always kept, then whole exchanges (a user
/// message and every assistant and tool message after it) are dropped oldest first, so a tool call is never
/// separated from its result. The last exchange is always kept, even when it alone is over the budget.
/// </summary>
/// <remarks>Deterministic and thread-safe: it runs in orchestrator code.</remarks>
public static class ConversationPruner
{
    private const int MessageOverheadTokens = 4;
    private static readonly Lazy<Tokenizer> O200k = new(() => TiktokenTokenizer.CreateForEncoding("o200k_base"));
    private static readonly Lazy<Tokenizer> Cl100k = new(() => TiktokenTokenizer.CreateForEncoding("cl100k_base"));

    /// <summary>Prunes <paramref name="messages"/> to at most <paramref name="budgetTokens"/> tokens.</summary>
    /// <param name="messages">The conversation.</param>
    /// <param name="budgetTokens">Tokens available for messages.</param>
    /// <param name="countTokens">Counts the tokens of a text.</param>
    /// <returns>The kept messages in their original order.</returns>
    public static IReadOnlyList<ModelMessage> Prune(IReadOnlyList<ModelMessage> messages, int budgetTokens, Func<string, int> countTokens)
    {
        ArgumentNullException.ThrowIfNull(messages);
        ArgumentNullException.ThrowIfNull(countTokens);
        int Cost(ModelMessage m) =>
            MessageOverheadTokens + (m.Content is null ? 0 : countTokens(m.Content)) + m.ToolCalls.Sum(c => countTokens(c.Name) + countTokens(c.Arguments));

        var system = messages.Where(m => m.Role == ModelRole.System).ToList();
        var exchanges = new List<List<ModelMessage>>();
        foreach (var message in messages.Where(m => m.Role != ModelRole.System))
        {
            if (message.Role == ModelRole.User || exchanges.Count == 0)
            {
                exchanges.Add([]);
            }

            exchanges[^1].Add(message);
        }

        int total = system.Sum(Cost) + exchanges.Sum(e => e.Sum(Cost));
        int first = 0;
        while (total > budgetTokens && first < exchanges.Count - 1)
        {
            total -= exchanges[first].Sum(Cost);
            first++;
        }

        if (first == 0)
        {
            return messages;
        }

        var kept = exchanges.Skip(first).SelectMany(e => e).ToHashSet(ReferenceEqualityComparer.Instance);
        return messages.Where(m => m.Role == ModelRole.System || kept.Contains(m)).ToArray();
    }

    /// <summary>Prunes with the tokenizer of <paramref name="modelName"/> (see <see cref="ToolSchemaCost.EncodingFor"/>).</summary>
    public static IReadOnlyList<ModelMessage> Prune(IReadOnlyList<ModelMessage> messages, int budgetTokens, string modelName)
    {
        var tokenizer = ToolSchemaCost.EncodingFor(modelName) == "o200k_base" ? O200k.Value : Cl100k.Value;
        return Prune(messages, budgetTokens, text => tokenizer.CountTokens(text));
    }
}
