using System.Net;
using Microsoft.Extensions.DependencyInjection;
using System.Net.Http.Json;
using System.Text.Json.Nodes;

namespace Orchestrator.Host.Api.Tests;

public sealed class ConversationApiTests
{
    [Fact(Timeout = 120_000)]
    public async Task PostMessage_NewConversation_Returns202WithTokenUrlsAndTheTurnWaitsForConfirmation()
    {
        await using ApiHarness api = await ApiHarness.StartSqliteAsync();

        using HttpResponseMessage response = await api.PostMessageAsync("conv-1", "refund my order A8472");

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        JsonObject body = (await response.Content.ReadFromJsonAsync<JsonObject>())!;
        Assert.Equal("conv-1", (string?)body["id"]);
        Assert.True((bool)body["started"]!);
        string token = (string)body["accessToken"]!;
        Assert.Equal((string)body["statusQueryGetUri"]!, response.Headers.Location!.ToString());
        foreach (string url in new[] { "statusQueryGetUri", "historyGetUri", "transcriptGetUri", "confirmationsGetUri", "terminatePostUri", "purgeHistoryDeleteUri", "sendMessagePostUri" })
        {
            Assert.Contains("token=" + token, (string)body[url]!, StringComparison.Ordinal);
            Assert.StartsWith(api.Host.Addresses[0] + "/api/conversations/conv-1", (string)body[url]!, StringComparison.Ordinal);
        }

        JsonNode pending = await api.PendingEventuallyAsync("conv-1");
        Assert.Equal("process_refund", (string?)pending["toolName"]);
        Assert.Equal("Refund $47.00 for order A8472", (string?)pending["summary"]);

        // The token alone (no management key) reads the conversation through the URLs it was given.
        JsonNode status = await api.GetJsonAsync((string)body["statusQueryGetUri"]!);
        Assert.Equal("Running", (string?)status["runtimeStatus"]);
        Assert.Equal("awaiting_confirmation", (string?)status["currentTurn"]!["phase"]);
        Assert.NotNull(status["currentTurn"]!["plan"]);
        JsonNode confirmations = await api.GetJsonAsync((string)body["confirmationsGetUri"]!);
        Assert.Equal("call_refund", (string?)confirmations.AsArray().Single()!["toolCallId"]);
        Assert.Equal(["call_notify"], confirmations[0]!["dependents"]!.AsArray().Select(d => (string)d!["toolCallId"]!));
        JsonNode history = await api.GetJsonAsync((string)body["historyGetUri"]!);
        Assert.Contains(history["turns"]![0]!["events"]!.AsArray(), e => (string?)e!["type"] == "TaskScheduled");
        Assert.Empty(api.Agent.Refunds);
    }

    [Fact(Timeout = 120_000)]
    public async Task PostMessage_RetriedWithSameIdempotencyKey_ReturnsFirstResponseAndSendsNothing()
    {
        await using ApiHarness api = await ApiHarness.StartSqliteAsync();

        using HttpResponseMessage first = await api.PostMessageAsync("conv-idem", "hello", idempotencyKey: "key-1");
        using HttpResponseMessage second = await api.PostMessageAsync("conv-idem", "hello", idempotencyKey: "key-1");

        Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, second.StatusCode);
        Assert.Equal(await first.Content.ReadAsStringAsync(), await second.Content.ReadAsStringAsync());
        Assert.Equal(first.Headers.Location, second.Headers.Location);
        Assert.True(second.Headers.Contains("Idempotent-Replayed"));
        string token = (string)(await first.Content.ReadFromJsonAsync<JsonObject>())!["accessToken"]!;

        // A later, different message is the second turn: the retried one never became a turn.
        using HttpResponseMessage next = await api.PostMessageAsync("conv-idem", "second", idempotencyKey: "key-2", token: token);
        Assert.Equal(HttpStatusCode.Accepted, next.StatusCode);
        await api.StatusEventuallyAsync("conv-idem", s => (int?)s["turns"] == 2 && s["currentTurn"] is null, "both turns done");
        JsonNode transcript = await api.GetJsonAsync("/api/conversations/conv-idem/transcript", management: true);
        Assert.Equal(["hello", "second"], transcript["messages"]!.AsArray().Where(m => (string?)m!["role"] == "user").Select(m => (string)m!["content"]!));
        Assert.Equal(["hello", "second"], api.Agent.UserMessagesSeen);
    }

    [Fact(Timeout = 120_000)]
    public async Task PostMessage_SameKeyDifferentBody_422AndNothingSent()
    {
        await using ApiHarness api = await ApiHarness.StartSqliteAsync();
        using HttpResponseMessage first = await api.PostMessageAsync("conv-422", "hello", idempotencyKey: "k");
        string token = (string)(await first.Content.ReadFromJsonAsync<JsonObject>())!["accessToken"]!;
        await api.StatusEventuallyAsync("conv-422", s => (int?)s["turns"] == 1, "first turn done");

        using HttpResponseMessage reused = await api.PostMessageAsync("conv-422", "something else", idempotencyKey: "k", token: token);

        Assert.Equal((HttpStatusCode)422, reused.StatusCode);
        Assert.Equal("application/problem+json", reused.Content.Headers.ContentType!.MediaType);
        JsonNode transcript = await api.GetJsonAsync("/api/conversations/conv-422/transcript", management: true);
        Assert.Equal(["hello"], transcript["messages"]!.AsArray().Where(m => (string?)m!["role"] == "user").Select(m => (string)m!["content"]!));
    }

    [Fact(Timeout = 120_000)]
    public async Task PostMessage_IdempotencyKeyAfterHostRestart_StillReturnsFirstResponse()
    {
        string db = Path.Combine(Directory.CreateTempSubdirectory("api-restart-").FullName, "orchestrator.db");
        string firstBody;
        await using (ApiHarness api = await ApiHarness.StartSqliteAsync(db))
        {
            using HttpResponseMessage first = await api.PostMessageAsync("conv-restart", "hello", idempotencyKey: "restart-key");
            Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
            firstBody = await first.Content.ReadAsStringAsync();
            await api.StatusEventuallyAsync("conv-restart", s => (int?)s["turns"] == 1, "turn done");
        }

        await using ApiHarness restarted = await ApiHarness.StartSqliteAsync(db);
        using HttpResponseMessage retry = await restarted.PostMessageAsync("conv-restart", "hello", idempotencyKey: "restart-key");

        Assert.Equal(HttpStatusCode.Accepted, retry.StatusCode);
        Assert.True(retry.Headers.Contains("Idempotent-Replayed"));
        // The stored body names the first host's port; its token and ids are the same.
        JsonObject a = JsonNode.Parse(firstBody)!.AsObject();
        JsonObject b = (await retry.Content.ReadFromJsonAsync<JsonObject>())!;
        Assert.Equal((string?)a["accessToken"], (string?)b["accessToken"]);
        Assert.Equal((string?)a["statusQueryGetUri"], (string?)b["statusQueryGetUri"]);
        JsonNode status = await restarted.StatusAsync("conv-restart");
        Assert.Equal(1, (int?)status["turns"]);
        Assert.Null(status["currentTurn"]);
        Assert.Empty(restarted.Agent.UserMessagesSeen);
    }

    [Fact(Timeout = 120_000)]
    public async Task ConversationUrls_WithoutOrWithAnotherConversationsToken_401Or403AndNothingLeaks()
    {
        await using ApiHarness api = await ApiHarness.StartSqliteAsync();
        JsonObject a = await api.StartAsync("conv-a", "hello");
        JsonObject b = await api.StartAsync("conv-b", "hello");
        string tokenB = (string)b["accessToken"]!;

        using HttpResponseMessage anonymous = await api.Http.GetAsync("/api/conversations/conv-a");
        using HttpResponseMessage otherToken = await api.Http.GetAsync($"/api/conversations/conv-a/transcript?token={tokenB}");
        using HttpResponseMessage wrongKey = await api.Http.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/api/conversations/conv-a/history") { Headers = { { "x-management-key", "not-the-key-at-all-000" } } });
        using HttpResponseMessage sendWithoutToken = await api.PostMessageAsync("conv-a", "let me in");
        using HttpResponseMessage sendWithOtherToken = await api.PostMessageAsync("conv-a", "let me in", token: tokenB);
        using HttpResponseMessage terminateWithOtherToken = await api.Http.PostAsync($"/api/conversations/conv-a/terminate?token={tokenB}", null);

        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, otherToken.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, wrongKey.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, sendWithoutToken.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, sendWithOtherToken.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, terminateWithOtherToken.StatusCode);
        foreach (HttpResponseMessage r in new[] { anonymous, otherToken, wrongKey, sendWithoutToken, sendWithOtherToken })
        {
            Assert.DoesNotContain("hello", await r.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        await api.StatusEventuallyAsync("conv-a", s => (int?)s["turns"] == 1 && s["currentTurn"] is null, "conv-a answered");
        JsonNode own = await api.GetJsonAsync((string)a["transcriptGetUri"]!);
        Assert.Equal(["hello"], own["messages"]!.AsArray().Where(m => (string?)m!["role"] == "user").Select(m => (string)m!["content"]!));
        Assert.Equal("Running", (string?)(await api.StatusAsync("conv-a"))["runtimeStatus"]);
    }

    [Fact(Timeout = 120_000)]
    public async Task PostMessage_BadInput_400AndNothingStarted()
    {
        await using ApiHarness api = await ApiHarness.StartSqliteAsync();

        using HttpResponseMessage badId = await api.PostMessageAsync("bad:id", "hello");
        using HttpResponseMessage blank = await api.PostMessageAsync("conv-blank", "   ");
        using HttpResponseMessage malformed = await api.Http.PostAsync("/api/conversations/conv-malformed/messages", ApiHarness.Json("{\"text\": "));

        Assert.Equal(HttpStatusCode.BadRequest, badId.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, blank.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, malformed.StatusCode);
        foreach (string id in new[] { "conv-blank", "conv-malformed" })
        {
            using var get = new HttpRequestMessage(HttpMethod.Get, $"/api/conversations/{id}") { Headers = { { "x-management-key", ApiHarness.ManagementKey } } };
            Assert.Equal(HttpStatusCode.NotFound, (await api.Http.SendAsync(get)).StatusCode);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task Transcript_And_History_RedactSensitiveArguments()
    {
        await using ApiHarness api = await ApiHarness.StartSqliteAsync();
        JsonObject started = await api.StartAsync("conv-card", "card please");
        await api.StatusEventuallyAsync("conv-card", s => (int?)s["turns"] == 1 && s["currentTurn"] is null, "card turn done");

        string transcript = (await api.GetJsonAsync((string)started["transcriptGetUri"]!)).ToJsonString();
        string history = (await api.GetJsonAsync((string)started["historyGetUri"]!)).ToJsonString();

        Assert.Contains("update_card", transcript, StringComparison.Ordinal);
        Assert.Contains("[REDACTED]", transcript, StringComparison.Ordinal);
        Assert.DoesNotContain(TestAgent.CardNumber, transcript, StringComparison.Ordinal);
        Assert.Contains("update_card", history, StringComparison.Ordinal);
        Assert.DoesNotContain(TestAgent.CardNumber, history, StringComparison.Ordinal);
    }

    [Fact(Timeout = 120_000)]
    public async Task TerminateThenPurge_EndsTheConversationRefusesMessagesThenForgetsIt()
    {
        await using ApiHarness api = await ApiHarness.StartSqliteAsync();
        JsonObject started = await api.StartAsync("conv-end", "refund A8472");
        await api.PendingEventuallyAsync("conv-end");
        string token = (string)started["accessToken"]!;

        using HttpResponseMessage purgeRunning = await api.Http.DeleteAsync((string)started["purgeHistoryDeleteUri"]!);
        Assert.Equal(HttpStatusCode.Conflict, purgeRunning.StatusCode);
        using HttpResponseMessage terminate = await api.Http.PostAsync((string)started["terminatePostUri"]!, null);
        Assert.Equal(HttpStatusCode.Accepted, terminate.StatusCode);
        await api.StatusEventuallyAsync("conv-end", s => (string?)s["runtimeStatus"] == "Terminated", "conversation terminated");
        await Eventually.Async(
            async () => (await api.Host.App.Services.GetRequiredService<ConversationRuntime>().Client.GetInstanceAsync("conv-end:turn:1"))!.IsCompleted,
            "its turn terminated");

        using HttpResponseMessage late = await api.PostMessageAsync("conv-end", "anyone?", token: token);
        Assert.Equal(HttpStatusCode.Conflict, late.StatusCode);
        // Right after termination the engine may still be dispatching the final messages: purge answers 409 "retry shortly".
        int purged = 0;
        await Eventually.Async(
            async () =>
            {
                using HttpResponseMessage purge = await api.Http.DeleteAsync((string)started["purgeHistoryDeleteUri"]!);
                Assert.True(purge.StatusCode is HttpStatusCode.OK or HttpStatusCode.Conflict, $"{purge.StatusCode}");
                purged += purge.StatusCode == HttpStatusCode.OK ? (int)(await purge.Content.ReadFromJsonAsync<JsonObject>())!["purgedInstances"]! : 0;
                return purge.StatusCode == HttpStatusCode.OK;
            },
            "purged");
        Assert.Equal(2, purged);
        using HttpResponseMessage gone = await api.Http.GetAsync((string)started["statusQueryGetUri"]!);
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
        Assert.Empty(api.Agent.Refunds);
    }

    [Fact(Timeout = 120_000)]
    public async Task PostMessage_ConcurrentRetriesWithOneKey_OneMessageAndEveryAnswerIsTheFirstOrInProgress()
    {
        await using ApiHarness api = await ApiHarness.StartSqliteAsync();

        HttpResponseMessage[] responses = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => api.PostMessageAsync("conv-race", "hello", idempotencyKey: "race")));

        string[] accepted = await Task.WhenAll(responses.Where(r => r.StatusCode == HttpStatusCode.Accepted).Select(r => r.Content.ReadAsStringAsync()));
        Assert.NotEmpty(accepted);
        Assert.Single(accepted.Distinct());
        Assert.All(responses, r => Assert.True(r.StatusCode is HttpStatusCode.Accepted or HttpStatusCode.Conflict, $"{r.StatusCode}"));
        await api.StatusEventuallyAsync("conv-race", s => (int?)s["turns"] == 1 && s["currentTurn"] is null, "turn done");
        using HttpResponseMessage after = await api.PostMessageAsync("conv-race", "hello", idempotencyKey: "race");
        Assert.Equal(accepted[0], await after.Content.ReadAsStringAsync());
        JsonNode transcript = await api.GetJsonAsync("/api/conversations/conv-race/transcript", management: true);
        Assert.Single(transcript["messages"]!.AsArray(), m => (string?)m!["role"] == "user");
        foreach (HttpResponseMessage r in responses)
        {
            r.Dispose();
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task Purge_ThenSameIdAndKey_StartsANewConversationInsteadOfReplayingTheOldOne()
    {
        await using ApiHarness api = await ApiHarness.StartSqliteAsync();
        using HttpResponseMessage first = await api.PostMessageAsync("conv-reuse", "hello", idempotencyKey: "same");
        await api.StatusEventuallyAsync("conv-reuse", s => (int?)s["turns"] == 1 && s["currentTurn"] is null, "first life answered");
        using var terminate = new HttpRequestMessage(HttpMethod.Post, "/api/conversations/conv-reuse/terminate") { Headers = { { "x-management-key", ApiHarness.ManagementKey } } };
        Assert.Equal(HttpStatusCode.Accepted, (await api.Http.SendAsync(terminate)).StatusCode);
        await api.StatusEventuallyAsync("conv-reuse", s => (string?)s["runtimeStatus"] == "Terminated", "terminated");
        await Eventually.Async(
            async () =>
            {
                using var purge = new HttpRequestMessage(HttpMethod.Delete, "/api/conversations/conv-reuse") { Headers = { { "x-management-key", ApiHarness.ManagementKey } } };
                using HttpResponseMessage purged = await api.Http.SendAsync(purge);
                Assert.True(purged.StatusCode is HttpStatusCode.OK or HttpStatusCode.Conflict, $"{purged.StatusCode}");
                return purged.StatusCode == HttpStatusCode.OK;
            },
            "purged");

        using HttpResponseMessage again = await api.PostMessageAsync("conv-reuse", "hello", idempotencyKey: "same");

        Assert.Equal(HttpStatusCode.Accepted, again.StatusCode);
        Assert.False(again.Headers.Contains("Idempotent-Replayed"));
        Assert.True((bool)(await again.Content.ReadFromJsonAsync<JsonObject>())!["started"]!);
        await api.StatusEventuallyAsync("conv-reuse", s => (int?)s["turns"] == 1 && s["currentTurn"] is null && (string?)s["runtimeStatus"] == "Running", "second life answered");
        Assert.Equal(["hello", "hello"], api.Agent.UserMessagesSeen);
    }
}
