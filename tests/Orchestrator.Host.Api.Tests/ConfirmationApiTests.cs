using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;

namespace Orchestrator.Host.Api.Tests;

public sealed class ConfirmationApiTests
{
    [Fact(Timeout = 120_000)]
    public async Task ListConfirmations_ManagementKey_ShowsExactArgumentsHashSummaryPlanAndDependents()
    {
        await using ApiHarness api = await ApiHarness.StartSqliteAsync();
        await api.StartAsync("conv-list", "refund A8472");
        JsonNode pending = await api.PendingEventuallyAsync("conv-list");

        using HttpResponseMessage anonymous = await api.Http.GetAsync("/api/confirmations");
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        JsonArray items = (await api.GetJsonAsync("/api/confirmations", management: true)).AsArray();

        JsonNode item = Assert.Single(items)!;
        Assert.Equal("conv-list", (string?)item["conversationId"]);
        Assert.Equal("conv-list:turn:1", (string?)item["turnInstanceId"]);
        Assert.Equal("call_refund", (string?)item["toolCallId"]);
        Assert.Equal("process_refund", (string?)item["tool"]);
        Assert.Equal("{\"amount\":47,\"currency\":\"USD\",\"order_id\":\"A8472\"}", (string?)item["arguments"]);
        Assert.Equal((string?)pending["argumentsHash"], (string?)item["argumentsHash"]);
        Assert.Equal("Refund $47.00 for order A8472", (string?)item["summary"]);
        Assert.Equal(["call_lookup"], item["waitsFor"]!.AsArray().Select(x => (string)x!));
        Assert.Equal(["call_notify"], item["dependents"]!.AsArray().Select(d => (string)d!["toolCallId"]!));
        Assert.True((int)item["stage"]! >= 1);
        Assert.True(DateTime.Parse((string)item["expiresAt"]!, System.Globalization.CultureInfo.InvariantCulture) > DateTime.UtcNow.AddHours(23));
        Assert.Equal("/api/approvals/conv-list%3Aturn%3A1/call_refund", (string?)item["decidePostUri"]);
    }

    [Fact(Timeout = 120_000)]
    public async Task ListConfirmations_MoreRunningInstancesThanOnePage_ListsEveryPendingConfirmation()
    {
        // Pages of one instance: each conversation and each of its turns is a running instance, so the list crosses
        // several continuation tokens and must still hold every pending call.
        await using ApiHarness api = await ApiHarness.StartSqliteAsync(api: new ApiSettings
        {
            ManagementKey = ApiHarness.ManagementKey,
            WebhookSecrets = [ApiHarness.Secret],
            ConfirmationListPageSize = 1,
        });
        string[] conversations = ["conv-page-a", "conv-page-b", "conv-page-c"];
        foreach (string conversation in conversations)
        {
            await api.StartAsync(conversation, "refund A8472");
        }

        foreach (string conversation in conversations)
        {
            await api.PendingEventuallyAsync(conversation);
        }

        JsonArray items = (await api.GetJsonAsync("/api/confirmations", management: true)).AsArray();

        Assert.Equal(conversations, items.Select(i => (string)i!["conversationId"]!).Order(StringComparer.Ordinal));
        Assert.All(items, i => Assert.Equal("call_refund", (string?)i!["toolCallId"]));
    }

    [Fact(Timeout = 120_000)]
    public async Task Approve_WrongHashThenInvalidEditThenApprove_RefusedTwiceChangingNothingThenRunsOnce()
    {
        await using ApiHarness api = await ApiHarness.StartSqliteAsync();
        await api.StartAsync("conv-approve", "refund A8472");
        JsonNode pending = await api.PendingEventuallyAsync("conv-approve");
        string hash = (string)pending["argumentsHash"]!;
        const string turn = "conv-approve:turn:1";

        (int noKey, _) = await api.ApproveAsync(turn, "call_refund", new { decision = "approve", argumentsHash = hash }, management: false);
        (int mismatch, _) = await api.ApproveAsync(turn, "call_refund", new { decision = "approve", argumentsHash = new string('0', 64) });
        (int invalidEdit, string invalidBody) = await api.ApproveAsync(turn, "call_refund", new
        {
            decision = "approve",
            argumentsHash = hash,
            editedArguments = new { order_id = "12345678", amount = 40.00, currency = "USD" },
        });
        (int otherOrder, string otherOrderBody) = await api.ApproveAsync(turn, "call_refund", new
        {
            decision = "approve",
            argumentsHash = hash,
            editedArguments = new { order_id = "A9999", amount = 40.00, currency = "USD" },
        });
        (int badDecision, _) = await api.ApproveAsync(turn, "call_refund", new { decision = "maybe", argumentsHash = hash });
        (int unknownCall, _) = await api.ApproveAsync(turn, "call_nope", new { decision = "approve", argumentsHash = hash });

        Assert.Equal(401, noKey);
        Assert.Equal(409, mismatch);
        Assert.Equal(422, invalidEdit);
        Assert.Equal("order_id", (string?)JsonNode.Parse(invalidBody)!["errors"]![0]!["argument"]);
        Assert.Equal(422, otherOrder);
        Assert.Equal("edit_changes_resource", (string?)JsonNode.Parse(otherOrderBody)!["code"]);
        Assert.Equal(400, badDecision);
        Assert.Equal(404, unknownCall);
        JsonNode still = await api.StatusAsync("conv-approve");
        Assert.Equal("awaiting_confirmation", (string?)still["currentTurn"]!["phase"]);
        Assert.Empty(still["currentTurn"]!["decided"]!.AsArray());
        Assert.Empty(api.Agent.Refunds);

        (int approved, string approvedBody) = await api.ApproveAsync(turn, "call_refund", new
        {
            decision = "approve",
            argumentsHash = hash,
            editedArguments = new { order_id = "A8472", amount = 40.00, currency = "USD" },
            decidedBy = "alice",
        });
        Assert.Equal(202, approved);
        Assert.Equal("accepted", (string?)JsonNode.Parse(approvedBody)!["result"]);
        JsonNode done = await api.StatusEventuallyAsync("conv-approve", s => (int?)s["turns"] == 1 && s["currentTurn"] is null, "turn completed after approval");
        Assert.Equal("Answered", (string?)done["lastOutcome"]);
        Assert.Equal(1, Assert.Single(api.Agent.Refunds).Value);

        (int again, _) = await api.ApproveAsync(turn, "call_refund", new { decision = "approve", argumentsHash = hash });
        Assert.Equal(409, again);
        Assert.Equal(1, Assert.Single(api.Agent.Refunds).Value);
    }

    [Fact(Timeout = 120_000)]
    public async Task Approve_AfterExpiry_410AndTheTurnIsUnchanged()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using ApiHarness api = await ApiHarness.StartSqliteAsync(apiClock: clock);
        await api.StartAsync("conv-expired", "refund A8472");
        string hash = (string)(await api.PendingEventuallyAsync("conv-expired"))["argumentsHash"]!;

        // Only the API's clock moves: the turn has not timed out yet, but the confirmation's expiry has passed.
        clock.Advance(TimeSpan.FromHours(25));
        (int status, string body) = await api.ApproveAsync("conv-expired:turn:1", "call_refund", new { decision = "approve", argumentsHash = hash });

        Assert.Equal(410, status);
        Assert.Contains("expired", body, StringComparison.Ordinal);
        JsonNode still = await api.StatusAsync("conv-expired");
        Assert.Equal("awaiting_confirmation", (string?)still["currentTurn"]!["phase"]);
        Assert.Empty(still["currentTurn"]!["decided"]!.AsArray());
        Assert.Empty(api.Agent.Refunds);
    }
}
