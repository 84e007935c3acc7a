namespace Orchestrator.Agents.Models;

/// <summary>
/// Where and how <see cref="OpenAIChatModel"/> calls a model: any OpenAI-compatible server (OpenAI, Azure OpenAI's
/// <c>/openai/v1/</c> endpoint, vLLM, llama.cpp, Ollama, the scripted test endpoint).
/// </summary>
public sealed record OpenAIChatModelOptions
{
    /// <summary>The base URL; <c>chat/completions</c> is appended. Default <c>https://api.openai.com/v1/</c>.</summary>
    public Uri BaseUrl { get; init; } = new("https://api.openai.com/v1/");

    /// <summary>The API key, sent as a bearer token. Required (local servers accept any non-empty value). Never logged.</summary>
    public string ApiKey { get; init; } = string.Empty;

    /// <summary>The model (or deployment) name. Required.</summary>
    public string Model { get; init; } = string.Empty;

    /// <summary>The <c>tool_choice</c> sent when tools are offered. Default <see cref="ModelToolChoice.Auto"/>.</summary>
    public ModelToolChoice ToolChoice { get; init; } = ModelToolChoice.Auto;

    /// <summary>The <c>parallel_tool_calls</c> flag sent when tools are offered; null (default) leaves it to the server.</summary>
    public bool? ParallelToolCalls { get; init; }

    /// <summary>The output token limit (<c>max_completion_tokens</c>); null (default) leaves it to the server.</summary>
    public int? MaxOutputTokens { get; init; }

    /// <summary>The sampling temperature; null (default) leaves it to the server.</summary>
    public float? Temperature { get; init; }

    /// <summary>The timeout of one HTTP attempt. Default 100 s.</summary>
    public TimeSpan NetworkTimeout { get; init; } = TimeSpan.FromSeconds(100);

    /// <summary>
    /// Retries of one call by the SDK's transport on 408/429/5xx and network errors, with backoff honouring
    /// <c>Retry-After</c>. Default 2. Model calls have no side effect, so retrying is safe; the Propose activity's
    /// own retry policy comes on top.
    /// </summary>
    public int MaxRetries { get; init; } = 2;

    /// <summary>Throws <see cref="ArgumentException"/> when the options cannot work.</summary>
    public void Validate()
    {
        if (!BaseUrl.IsAbsoluteUri || (BaseUrl.Scheme != Uri.UriSchemeHttp && BaseUrl.Scheme != Uri.UriSchemeHttps))
        {
            throw new ArgumentException($"BaseUrl must be an absolute http(s) URL, not '{BaseUrl}'.", nameof(BaseUrl));
        }

        if (string.IsNullOrWhiteSpace(ApiKey))
        {
            throw new ArgumentException("ApiKey is required (any non-empty value for servers that do not check it).", nameof(ApiKey));
        }

        if (string.IsNullOrWhiteSpace(Model))
        {
            throw new ArgumentException("Model is required.", nameof(Model));
        }

        if (ToolChoice.Kind == ModelToolChoiceKind.Function && string.IsNullOrWhiteSpace(ToolChoice.FunctionName))
        {
            throw new ArgumentException("A function tool choice needs a function name.", nameof(ToolChoice));
        }

        if (MaxOutputTokens is <= 0)
        {
            throw new ArgumentException("MaxOutputTokens must be positive.", nameof(MaxOutputTokens));
        }

        if (NetworkTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("NetworkTimeout must be positive.", nameof(NetworkTimeout));
        }

        if (MaxRetries < 0)
        {
            throw new ArgumentException("MaxRetries must not be negative.", nameof(MaxRetries));
        }
    }
}
