using System.Text.RegularExpressions;
using Azure;

namespace Orchestrator.Durable.AzureStorage;

/// <summary>A storage failure in one line for people: status, error code and, for a refused token, the service's reason.</summary>
internal static partial class StorageFailure
{
    public static string Describe(RequestFailedException ex)
    {
        Response? response = ex.GetRawResponse();
        // The table client leaves ErrorCode empty when the error body is XML (as Azurite's authentication errors are);
        // the x-ms-error-code header still carries it.
        string? code = ex.ErrorCode;
        if (string.IsNullOrEmpty(code) && response is not null && response.Headers.TryGetValue("x-ms-error-code", out string? header))
        {
            code = header;
        }

        string message = ex.Message;
        int newline = message.IndexOf('\n', StringComparison.Ordinal);
        string first = (newline < 0 ? message : message[..newline]).Trim();
        Match detail = AuthenticationErrorDetail().Match(response?.Content?.ToString() ?? string.Empty);
        return $"HTTP {ex.Status} {code}: {first}{(detail.Success ? $" ({detail.Groups[1].Value.Trim()})" : string.Empty)}";
    }

    [GeneratedRegex("<AuthenticationErrorDetail>([^<]*)</AuthenticationErrorDetail>")]
    private static partial Regex AuthenticationErrorDetail();
}
