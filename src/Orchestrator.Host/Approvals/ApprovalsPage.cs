using System.Reflection;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Orchestrator.Host.Approvals;

/// <summary>
/// Serves the approvals page: three static files embedded in this assembly (no build step, no CDN), so the page ships
/// with the host whatever its content root. The page itself is public; everything it shows comes from the management
/// API with the key the user enters (kept in the tab's sessionStorage, or passed in the URL fragment, which browsers
/// never send to the server).
/// </summary>
internal static class ApprovalsPage
{
    /// <summary>Where the page lives.</summary>
    public const string Path = "/approvals";

    // Only the page's own script and style may run or load; inline script and event-handler attributes are refused, so
    // even a rendering bug could not execute a model-supplied <img onerror=...>.
    private const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    private static readonly (string Route, string Resource, string ContentType)[] Files =
    [
        (Path, "index.html", "text/html; charset=utf-8"),
        (Path + "/approvals.js", "approvals.js", "text/javascript; charset=utf-8"),
        (Path + "/approvals.css", "approvals.css", "text/css; charset=utf-8"),
    ];

    public static IEndpointRouteBuilder MapApprovalsPage(this IEndpointRouteBuilder app)
    {
        foreach ((string route, string resource, string contentType) in Files)
        {
            byte[] content = Read(resource);
            app.MapGet(route, (HttpContext http) =>
            {
                IHeaderDictionary headers = http.Response.Headers;
                headers.ContentSecurityPolicy = ContentSecurityPolicy;
                headers.XContentTypeOptions = "nosniff";
                headers.XFrameOptions = "DENY";
                headers["Referrer-Policy"] = "no-referrer";
                headers.CacheControl = "no-store";
                return TypedResults.Bytes(content, contentType);
            })
            .WithTags("Approvals page")
            .WithSummary(resource == "index.html" ? "The approvals page (HTML; it asks for the management key and calls the approvals API)." : $"The approvals page's {resource}.")
            .Produces(StatusCodes.Status200OK, contentType: contentType.Split(';')[0]);
        }

        return app;
    }

    private static byte[] Read(string name)
    {
        string resource = "Orchestrator.Host.Approvals." + name;
        using Stream stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(resource)
            ?? throw new InvalidOperationException($"The approvals page resource '{resource}' is missing from the assembly.");
        using var memory = new MemoryStream();
        stream.CopyTo(memory);
        return memory.ToArray();
    }
}
