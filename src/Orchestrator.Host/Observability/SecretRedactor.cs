using System.Text;
using System.Text.RegularExpressions;

namespace Orchestrator.Host.Observability;

/// <summary>
/// Takes secrets out of text bound for a log line or a terminal: Standard Webhooks secrets (<c>whsec_...</c>),
/// OpenAI-style API keys (<c>sk-...</c>), the configured key values (model API key, management key, webhook
/// secrets), and card numbers (13-19 digits, optionally grouped by spaces or dashes, that pass the Luhn check).
/// </summary>
/// <remarks>
/// Argument values a tool marks sensitive never reach a log line in the first place: the agent layer logs ids and
/// hashes, never arguments, and redacts them in the confirmation card. This layer is the net under everything else.
/// Thread-safe.
/// </remarks>
internal sealed partial class SecretRedactor
{
    /// <summary>What a redacted value is replaced with.</summary>
    public const string Mask = "[REDACTED]";

    private readonly string[] _knownSecrets;

    /// <param name="knownSecrets">Configured secret values to remove wherever they appear; values shorter than 8 characters are ignored (they would mask ordinary words).</param>
    public SecretRedactor(IEnumerable<string?>? knownSecrets = null)
    {
        _knownSecrets = (knownSecrets ?? [])
            .Where(s => !string.IsNullOrWhiteSpace(s) && s.Length >= 8)
            .Select(s => s!)
            .Distinct(StringComparer.Ordinal)
            .OrderByDescending(s => s.Length) // a longer secret that contains a shorter one goes first
            .ToArray();
    }

    /// <summary>A redactor with no configured secrets (patterns only).</summary>
    public static SecretRedactor PatternsOnly { get; } = new();

    /// <summary>Returns <paramref name="text"/> with every secret replaced by <see cref="Mask"/>; the same instance when nothing matched.</summary>
    public string Redact(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string result = text;
        foreach (string secret in _knownSecrets)
        {
            result = result.Replace(secret, Mask, StringComparison.Ordinal);
        }

        result = WebhookSecret().Replace(result, Mask);
        result = ApiKey().Replace(result, Mask);
        result = CardCandidate().Replace(result, m => IsCardNumber(m.Value) ? Mask : m.Value);
        return result;
    }

    /// <summary>True when <paramref name="candidate"/> is 13-19 digits (spaces and dashes between them allowed) passing the Luhn check.</summary>
    internal static bool IsCardNumber(string candidate)
    {
        var digits = new StringBuilder(19);
        foreach (char c in candidate)
        {
            if (char.IsAsciiDigit(c))
            {
                digits.Append(c);
            }
            else if (c is not (' ' or '-'))
            {
                return false;
            }
        }

        if (digits.Length is < 13 or > 19)
        {
            return false;
        }

        return Orchestrator.Agents.CardNumbers.PassesLuhn(digits.ToString());
    }

    [GeneratedRegex(@"whsec_[A-Za-z0-9+/=_\-]+", RegexOptions.CultureInvariant)]
    private static partial Regex WebhookSecret();

    // sk-..., sk-proj-..., sk-ant-...: at least 16 key characters so "sk-1" in prose stays.
    [GeneratedRegex(@"\bsk-[A-Za-z0-9_\-]{16,}", RegexOptions.CultureInvariant)]
    private static partial Regex ApiKey();

    // A digit, then 11-17 digits each optionally preceded by one space or dash, then a digit; not inside a longer number.
    [GeneratedRegex(@"(?<![\d])\d(?:[ \-]?\d){11,17}[ \-]?\d(?![\d])", RegexOptions.CultureInvariant)]
    private static partial Regex CardCandidate();
}
