using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Orchestrator.Agents;

/// <summary>
/// Encrypts the values of arguments marked sensitive (<see cref="ToolDefinition.SensitiveArguments"/>) so that
/// orchestration history, custom status and turn output hold ciphertext, while validation, the confirmation hash and
/// the executed call work on the real values. The host holds the key; give it to
/// <see cref="AgentTurnOptions.SensitiveValues"/>.
/// </summary>
/// <remarks>
/// <para>
/// AES-256-GCM with a synthetic nonce (HMAC-SHA256 of the value under a second derived key), so encryption is
/// deterministic: orchestrator code may encrypt during replay and get the same bytes. The price is that two equal
/// values give equal ciphertexts (equality leaks, nothing else). Each value is sealed as the string
/// <c>enc:v1:{keyId}:{base64url(nonce|ciphertext|tag)}</c> in place of the JSON value.
/// </para>
/// <para>
/// Keep the key as long as any history, conversation or turn output that holds its ciphertext is kept: without it
/// those turns cannot be replayed or continued. Rotate by making a new protector with the new key first and the old
/// ones after it: new values are sealed with the first, all can be opened. Thread-safe.
/// </para>
/// </remarks>
public sealed class SensitiveValueProtector
{
    /// <summary>What every sealed value starts with.</summary>
    public const string Prefix = "enc:v1:";

    private static readonly byte[] AssociatedData = Encoding.UTF8.GetBytes("orchestrator.agents.sensitive.v1");
    private readonly KeySet _primary;
    private readonly Dictionary<string, KeySet> _byId = new(StringComparer.Ordinal);

    /// <summary>Creates a protector.</summary>
    /// <param name="key">The current 32-byte key: new values are sealed with it.</param>
    /// <param name="previousKeys">Older 32-byte keys whose values must still open.</param>
    /// <exception cref="ArgumentException">A key is not 32 bytes, or two keys are the same.</exception>
    public SensitiveValueProtector(byte[] key, params byte[][] previousKeys)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(previousKeys);
        _primary = Add(key);
        foreach (var previous in previousKeys)
        {
            Add(previous);
        }
    }

    /// <summary>The id of the current key (8 hex digits of a hash of it): names the key in sealed values and errors, reveals nothing of it.</summary>
    public string KeyId => _primary.Id;

    /// <summary>A protector from base64 keys (configuration): the current key first, then older ones.</summary>
    /// <exception cref="ArgumentException">A key is not base64 of 32 bytes.</exception>
    public static SensitiveValueProtector FromBase64(string key, params string[] previousKeys)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(key);
        ArgumentNullException.ThrowIfNull(previousKeys);
        return new SensitiveValueProtector(Decode(key), [.. previousKeys.Select(Decode)]);

        static byte[] Decode(string text)
        {
            try
            {
                return Convert.FromBase64String(text);
            }
            catch (FormatException ex)
            {
                throw new ArgumentException("A sensitive-value key must be base64 of 32 random bytes.", nameof(key), ex);
            }
        }
    }

    /// <summary>Whether <paramref name="value"/> has the form of a sealed value.</summary>
    public static bool IsSealed(string? value) => value is not null && value.StartsWith(Prefix, StringComparison.Ordinal);

    /// <summary>Seals <paramref name="plaintext"/>; the same text always gives the same result under the same key.</summary>
    public string Seal(string plaintext)
    {
        ArgumentNullException.ThrowIfNull(plaintext);
        byte[] plain = Encoding.UTF8.GetBytes(plaintext);
        byte[] nonce = HMACSHA256.HashData(_primary.NonceKey, plain)[..AesGcm.NonceByteSizes.MaxSize];
        byte[] sealedBytes = new byte[nonce.Length + plain.Length + AesGcm.TagByteSizes.MaxSize];
        nonce.CopyTo(sealedBytes, 0);
        using (var aes = new AesGcm(_primary.EncryptionKey, AesGcm.TagByteSizes.MaxSize))
        {
            aes.Encrypt(nonce, plain, sealedBytes.AsSpan(nonce.Length, plain.Length), sealedBytes.AsSpan(nonce.Length + plain.Length), AssociatedData);
        }

        return $"{Prefix}{_primary.Id}:{Base64UrlEncode(sealedBytes)}";
    }

    /// <summary>Opens a sealed value.</summary>
    /// <exception cref="SensitiveValueException">Not a sealed value, sealed with a key this protector does not hold, or altered.</exception>
    public string Open(string sealedValue)
    {
        ArgumentNullException.ThrowIfNull(sealedValue);
        if (!IsSealed(sealedValue) || sealedValue.IndexOf(':', Prefix.Length) is var colon && colon < 0)
        {
            throw new SensitiveValueException("The value is not a sealed sensitive value.");
        }

        string keyId = sealedValue[Prefix.Length..colon];
        if (!_byId.TryGetValue(keyId, out var keys))
        {
            throw new SensitiveValueException($"The sensitive value was sealed with key '{keyId}', which this host does not hold (it holds {string.Join(", ", _byId.Keys)}).");
        }

        byte[] bytes;
        try
        {
            bytes = Base64UrlDecode(sealedValue[(colon + 1)..]);
        }
        catch (FormatException ex)
        {
            throw new SensitiveValueException("The sealed sensitive value is damaged.", ex);
        }

        int nonceSize = AesGcm.NonceByteSizes.MaxSize, tagSize = AesGcm.TagByteSizes.MaxSize;
        if (bytes.Length < nonceSize + tagSize)
        {
            throw new SensitiveValueException("The sealed sensitive value is damaged.");
        }

        byte[] plain = new byte[bytes.Length - nonceSize - tagSize];
        try
        {
            using var aes = new AesGcm(keys.EncryptionKey, tagSize);
            aes.Decrypt(bytes.AsSpan(0, nonceSize), bytes.AsSpan(nonceSize, plain.Length), bytes.AsSpan(nonceSize + plain.Length), plain, AssociatedData);
        }
        catch (AuthenticationTagMismatchException ex)
        {
            throw new SensitiveValueException($"The sealed sensitive value does not open with key '{keyId}': it was altered.", ex);
        }

        return Encoding.UTF8.GetString(plain);
    }

    private KeySet Add(byte[] key)
    {
        if (key is not { Length: 32 })
        {
            throw new ArgumentException("A sensitive-value key must be 32 bytes (AES-256).", nameof(key));
        }

        var set = new KeySet(
            Convert.ToHexStringLower(SHA256.HashData([.. "orchestrator.agents.key-id:"u8, .. key]))[..8],
            HMACSHA256.HashData(key, "orchestrator.agents.encrypt"u8),
            HMACSHA256.HashData(key, "orchestrator.agents.nonce"u8));
        if (!_byId.TryAdd(set.Id, set))
        {
            throw new ArgumentException($"Key '{set.Id}' is given twice.", nameof(key));
        }

        return set;
    }

    private static string Base64UrlEncode(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static byte[] Base64UrlDecode(string text)
    {
        string padded = text.Replace('-', '+').Replace('_', '/');
        padded += (padded.Length % 4) switch { 2 => "==", 3 => "=", _ => string.Empty };
        return Convert.FromBase64String(padded);
    }

    private sealed record KeySet(string Id, byte[] EncryptionKey, byte[] NonceKey);
}

/// <summary>A sealed sensitive value could not be opened (unknown key, damaged or altered).</summary>
public sealed class SensitiveValueException : Exception
{
    /// <summary>Creates the exception.</summary>
    public SensitiveValueException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public SensitiveValueException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public SensitiveValueException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>Seals and opens the sensitive values inside one call's argument JSON.</summary>
/// <remarks>
/// Sealing replaces each value at a sensitive path with the sealed text of its JSON; arguments that are not a JSON
/// object are sealed whole. Opening reverses it; values that are not sealed (histories written before sealing, or
/// without a key) pass through unchanged, so old histories replay as they were.
/// </remarks>
internal static class SensitiveArguments
{
    private static readonly JsonSerializerOptions WriteOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>The arguments with every sensitive value sealed; unchanged without a protector or sensitive arguments.</summary>
    internal static string Seal(SensitiveValueProtector? protector, ToolRegistry tools, string toolName, string arguments)
    {
        if (protector is null || tools.Find(toolName) is not { SensitivePaths.Count: > 0 } tool)
        {
            return arguments;
        }

        if (TryParseObject(arguments) is not { } root)
        {
            // Unparseable arguments of a tool with sensitive arguments may hold the values anywhere: seal them whole.
            return protector.Seal(arguments);
        }

        return ArgumentRedactor.Replace(tool, root, value => JsonValue.Create(protector.Seal(value?.ToJsonString(WriteOptions) ?? "null")))
            ? root.ToJsonString(WriteOptions)
            : arguments;
    }

    /// <summary>The arguments with every sealed value opened.</summary>
    /// <exception cref="SensitiveValueException">A value is sealed and cannot be opened (no key, another key, altered).</exception>
    internal static string Open(SensitiveValueProtector? protector, ToolRegistry tools, string toolName, string arguments)
    {
        if (tools.Find(toolName) is not { SensitivePaths.Count: > 0 } tool)
        {
            return arguments;
        }

        if (SensitiveValueProtector.IsSealed(arguments))
        {
            return Require(protector).Open(arguments);
        }

        if (TryParseObject(arguments) is not { } root)
        {
            return arguments;
        }

        var changed = false;
        ArgumentRedactor.Replace(tool, root, value =>
        {
            if (value is JsonValue v && v.TryGetValue<string>(out var text) && SensitiveValueProtector.IsSealed(text))
            {
                changed = true;
                return JsonNode.Parse(Require(protector).Open(text));
            }

            return value?.DeepClone();
        });
        return changed ? root.ToJsonString(WriteOptions) : arguments;
    }

    /// <summary>The canonical arguments with every sealed value opened, in canonical form again.</summary>
    internal static string OpenCanonical(SensitiveValueProtector? protector, ToolRegistry tools, string toolName, string arguments)
    {
        string opened = Open(protector, tools, toolName, arguments);
        if (ReferenceEquals(opened, arguments))
        {
            return arguments;
        }

        using var document = JsonDocument.Parse(opened);
        return CanonicalJson.Canonicalize(document.RootElement);
    }

    /// <summary>The assistant messages' tool-call arguments opened, for the model (which should see its own calls as it made them).</summary>
    internal static IReadOnlyList<Models.ModelMessage> OpenMessages(SensitiveValueProtector? protector, ToolRegistry tools, IReadOnlyList<Models.ModelMessage> messages) =>
        messages.Select(m => m.ToolCalls.Count == 0
                ? m
                : m with { ToolCalls = m.ToolCalls.Select(c => c with { Arguments = Open(protector, tools, c.Name, c.Arguments) }).ToArray() })
            .ToArray();

    /// <summary>
    /// A reply text that writes tool calls (open models) is sealed whole when any tool has sensitive arguments: where
    /// the values sit in it is only known after parsing, which the orchestrator does.
    /// </summary>
    internal static string? SealCallText(SensitiveValueProtector? protector, ToolRegistry tools, string? text)
    {
        if (protector is null || text is null || !tools.RegisteredTools.Any(t => t.SensitivePaths.Count > 0) || TextToolCallParser.Parse(text).IsPlainText)
        {
            return text;
        }

        return protector.Seal(text);
    }

    /// <summary>The reply text, opened when it was sealed by <see cref="SealCallText"/>.</summary>
    internal static string? OpenText(SensitiveValueProtector? protector, string? text) =>
        SensitiveValueProtector.IsSealed(text) ? Require(protector).Open(text!) : text;

    private static SensitiveValueProtector Require(SensitiveValueProtector? protector) =>
        protector ?? throw new SensitiveValueException("History holds sealed sensitive values but this host has no key (AgentTurnOptions.SensitiveValues).");

    private static JsonObject? TryParseObject(string text)
    {
        try
        {
            return JsonNode.Parse(text, documentOptions: CanonicalJson.ParseOptions) as JsonObject;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
