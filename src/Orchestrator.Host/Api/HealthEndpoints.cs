using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Orchestrator.Host.Api;

/// <summary>Liveness (<c>/healthz</c>: the process serves requests) and readiness (<c>/readyz</c>: the backend and the request ledger answer).</summary>
internal static class HealthEndpoints
{
    private static readonly TimeSpan ReadinessTimeout = TimeSpan.FromSeconds(5);

    public static IEndpointRouteBuilder MapHealthEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGet("/healthz", () => TypedResults.Json(new { status = "Healthy" }, ApiResponses.Json))
            .WithTags("Health").WithName("Liveness").WithSummary("The process is up.");
        app.MapGet("/readyz", ReadyAsync)
            .WithTags("Health").WithName("Readiness").WithSummary("The backend store and the request ledger answer; 503 otherwise.")
            .Produces(200).Produces(503);
        return app;
    }

    private static async Task<IResult> ReadyAsync(ConversationRuntime runtime, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(ReadinessTimeout);
        var checks = new Dictionary<string, string>();
        bool ready = true;
        try
        {
            await runtime.Backend.GetInstanceAsync("readyz-probe", timeout.Token).ConfigureAwait(false);
            checks["backend"] = "Healthy";
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            checks["backend"] = "Unhealthy: " + ex.GetType().Name;
            ready = false;
        }

        try
        {
            await runtime.Ledger.CheckAsync(timeout.Token).ConfigureAwait(false);
            checks["requestLedger"] = "Healthy";
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            checks["requestLedger"] = "Unhealthy: " + ex.GetType().Name;
            ready = false;
        }

        return TypedResults.Json(new { status = ready ? "Healthy" : "Unhealthy", checks }, ApiResponses.Json, statusCode: ready ? 200 : 503);
    }
}
