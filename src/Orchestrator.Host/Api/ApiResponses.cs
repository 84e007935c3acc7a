using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http;

namespace Orchestrator.Host.Api;

/// <summary>Responses built as data first, so an idempotent endpoint can store one and send it again byte for byte.</summary>
internal static class ApiResponses
{
    /// <summary>The API's JSON: camelCase, enums as strings.</summary>
    public static readonly JsonSerializerOptions Json = CreateJson();

    /// <summary>Header set on a response sent again for a repeated key.</summary>
    public const string ReplayedHeader = "Idempotent-Replayed";

    public static StoredResponse Ok(int status, object body, string? location = null) =>
        new(status, JsonSerializer.Serialize(body, body.GetType(), Json), location);

    /// <summary>An RFC 9457 problem.</summary>
    public static StoredResponse Problem(int status, string title, string detail, IDictionary<string, object?>? extensions = null)
    {
        var body = new Dictionary<string, object?>
        {
            ["type"] = $"https://www.rfc-editor.org/rfc/rfc9110#status.{status}",
            ["title"] = title,
            ["status"] = status,
            ["detail"] = detail,
        };
        foreach (KeyValuePair<string, object?> e in extensions ?? new Dictionary<string, object?>())
        {
            body[e.Key] = e.Value;
        }

        return new StoredResponse(status, JsonSerializer.Serialize(body, Json), null);
    }

    public static IResult ToResult(this StoredResponse response, HttpContext context, bool replayed = false)
    {
        if (response.Location is not null)
        {
            context.Response.Headers.Location = response.Location;
        }

        if (replayed)
        {
            context.Response.Headers[ReplayedHeader] = "true";
        }

        return TypedResults.Content(response.Body, response.Status >= 400 ? "application/problem+json" : "application/json", Encoding.UTF8, response.Status);
    }

    public static IResult Problem(HttpContext context, int status, string title, string detail) => Problem(status, title, detail).ToResult(context);

    /// <summary>401 without credentials, 403 with wrong ones.</summary>
    public static IResult Denied(HttpContext context, string what) => AccessKeys.PresentsCredentials(context)
        ? Problem(context, 403, "Forbidden", $"The credentials given do not grant access to {what}.")
        : Problem(context, 401, "Unauthorized", $"Access to {what} needs the conversation's access token (?token= or header {AccessKeys.ConversationTokenHeader}) or the management key (header {AccessKeys.ManagementKeyHeader}).");

    private static JsonSerializerOptions CreateJson()
    {
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        options.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.CamelCase));
        return options;
    }
}
