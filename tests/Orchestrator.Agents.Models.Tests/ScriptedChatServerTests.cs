using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Time.Testing;
using Orchestrator.Agents.Models.Scripted;

namespace Orchestrator.Agents.Models.Tests;

public sealed class ScriptedChatServerTests
{
    private static readonly ModelToolDefinition Refund = new("process_refund", "Refund an order.", """{"type":"object","properties":{"order_id":{"type":"string"},"amount":{"type":"number"}}}""");

    private static OpenAIChatModel ModelFor(ScriptedChatServer server) =>
        new(new OpenAIChatModelOptions { BaseUrl = server.BaseUrl, ApiKey = "k", Model = "m", MaxRetries = 0 });

    private static async Task<(HttpStatusCode Status, JsonElement Body)> PostRawAsync(ScriptedChatServer server, string body)
    {
        using var http = new HttpClient();
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        using HttpResponseMessage response = await http.PostAsync(new Uri(server.BaseUrl, "chat/completions"), content);
        using JsonDocument doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return (response.StatusCode, doc.RootElement.Clone());
    }

    [Fact(Timeout = 30_000)]
    public async Task StartFromFile_MultiStepCassette_DrivesTheConversationByMatchConditions()
    {
        await using ScriptedChatServer server = await ScriptedChatServer.StartFromFileAsync(Path.Combine(AppContext.BaseDirectory, "Cassettes", "refund-incident.json"), null, CancellationToken.None);
        OpenAIChatModel model = ModelFor(server);
        var conversation = new List<ModelMessage> { ModelMessage.User("Please refund my order, account 99812345, order A8472.") };

        ModelReply first = await model.CompleteAsync(new ModelRequest(conversation, [Refund]), CancellationToken.None);
        conversation.Add(ModelMessage.FromReply(first));
        conversation.Add(ModelMessage.ToolResult(first.ToolCalls[0].Id, """{"error":"order_id must match ^A\\d{4,}$"}"""));
        ModelReply second = await model.CompleteAsync(new ModelRequest(conversation, [Refund]), CancellationToken.None);
        conversation.Add(ModelMessage.FromReply(second));
        conversation.Add(ModelMessage.ToolResult(second.ToolCalls[0].Id, """{"status":"refunded"}"""));
        ModelReply third = await model.CompleteAsync(new ModelRequest(conversation, [Refund]), CancellationToken.None);

        Assert.Equal(new ModelToolCall("call_1", "process_refund", """{"order_id":"99812345","amount":47.00}"""), Assert.Single(first.ToolCalls));
        Assert.Equal(new ModelUsage(210, 24, 234), first.Usage);
        Assert.Equal(new ModelToolCall("call_2", "process_refund", """{"order_id":"A8472","amount":47.00}"""), Assert.Single(second.ToolCalls));
        Assert.Equal("Your refund of $47.00 for order A8472 is done.", third.Text);
        Assert.Equal("scripted-support-model", third.Model);
        Assert.Equal([0, 1, 2], server.Requests.Select(r => r.MatchedEntry ?? -1));
        Assert.Equal("""{"error":"order_id must match ^A\\d{4,}$"}""", server.Requests[1].ToolResultFor("call_1"));
        Assert.Empty(server.Unplayed);
        Assert.Empty(server.Unmatched);
    }

    [Fact(Timeout = 30_000)]
    public async Task Post_ScriptPlayedOut_Answers400ScriptNoMatchAndListsTheRequest()
    {
        await using ScriptedChatServer server = await ScriptedChatServer.StartAsync(new ChatScript(ScriptEntry.Text("only once")), null, CancellationToken.None);
        OpenAIChatModel model = ModelFor(server);
        await model.CompleteAsync(new ModelRequest([ModelMessage.User("a")], []), CancellationToken.None);

        ModelCallException e = await Assert.ThrowsAsync<ModelCallException>(() => model.CompleteAsync(new ModelRequest([ModelMessage.User("b")], []), CancellationToken.None));

        Assert.Equal(400, e.StatusCode);
        Assert.Contains("no script entry matches request #2", e.Message, StringComparison.Ordinal);
        Assert.Equal(2, Assert.Single(server.Unmatched).Number);
    }

    [Fact(Timeout = 30_000)]
    public async Task Post_RepeatingEntry_AnswersEveryMatchingRequestAndEarlierEntriesFirst()
    {
        var script = new ChatScript(
            ScriptEntry.Text("first") with { When = new ScriptMatch { CallNumber = 1 } },
            ScriptEntry.Calls(new ScriptedToolCall("call_x", "failing_tool", "{}")) with { Repeat = true, When = new ScriptMatch { LastRole = "tool" } },
            ScriptEntry.Text("fallback"));
        await using ScriptedChatServer server = await ScriptedChatServer.StartAsync(script, null, CancellationToken.None);
        OpenAIChatModel model = ModelFor(server);
        ModelRequest afterTool = new([ModelMessage.User("go"), ModelMessage.Assistant(null, [new ModelToolCall("call_x", "failing_tool", "{}")]), ModelMessage.ToolResult("call_x", "error")], []);

        ModelReply r1 = await model.CompleteAsync(afterTool, CancellationToken.None);
        ModelReply r2 = await model.CompleteAsync(afterTool, CancellationToken.None);
        ModelReply r3 = await model.CompleteAsync(afterTool, CancellationToken.None);
        ModelReply r4 = await model.CompleteAsync(new ModelRequest([ModelMessage.User("plain")], []), CancellationToken.None);

        Assert.Equal("first", r1.Text);
        Assert.Equal("call_x", Assert.Single(r2.ToolCalls).Id);
        Assert.Equal("call_x", Assert.Single(r3.ToolCalls).Id);
        Assert.Equal("fallback", r4.Text);
        Assert.Empty(server.Unplayed);
    }

    [Fact(Timeout = 30_000)]
    public async Task Post_AnyContainsCondition_SelectsTheMatchingEntryOutOfOrder()
    {
        var script = new ChatScript(
            ScriptEntry.Text("about charges") with { When = new ScriptMatch { AnyContains = "charge" } },
            ScriptEntry.Text("about refunds") with { When = new ScriptMatch { AnyContains = "refund" } });
        await using ScriptedChatServer server = await ScriptedChatServer.StartAsync(script, null, CancellationToken.None);
        OpenAIChatModel model = ModelFor(server);

        ModelReply refund = await model.CompleteAsync(new ModelRequest([ModelMessage.System("desk"), ModelMessage.User("a refund")], []), CancellationToken.None);
        ModelReply charge = await model.CompleteAsync(new ModelRequest([ModelMessage.User("a charge")], []), CancellationToken.None);

        Assert.Equal("about refunds", refund.Text);
        Assert.Equal("about charges", charge.Text);
        Assert.Equal([1, 0], server.Requests.Select(r => r.MatchedEntry ?? -1));
    }

    [Fact(Timeout = 30_000)]
    public async Task Post_WithLatency_WaitsOnTheInjectedClock()
    {
        var clock = new FakeTimeProvider();
        await using ScriptedChatServer server = await ScriptedChatServer.StartAsync(
            new ChatScript(ScriptEntry.Text("slow")),
            new ScriptedChatServerOptions { Latency = TimeSpan.FromSeconds(30), TimeProvider = clock },
            CancellationToken.None);
        Task<ModelReply> call = ModelFor(server).CompleteAsync(new ModelRequest([ModelMessage.User("hi")], []), CancellationToken.None);

        await TestWait.EventuallyAsync(() => server.Requests.Count == 1, because: "the request should arrive");
        Assert.False(call.IsCompleted);

        // The request is recorded just before the server starts its delay, so the first advance can land before the
        // timer exists; advance again (bounded) until the reply comes. Only the fake clock moves the reply on.
        for (int i = 0; i < 100 && !call.IsCompleted; i++)
        {
            clock.Advance(TimeSpan.FromSeconds(30));
            await Task.WhenAny(call, Task.Delay(TimeSpan.FromMilliseconds(100)));
        }

        Assert.Equal("slow", (await call.WaitAsync(TimeSpan.FromSeconds(10))).Text);
    }

    [Fact(Timeout = 30_000)]
    public async Task Post_EntryLatency_ReplacesTheServerDefault()
    {
        var clock = new FakeTimeProvider();
        await using ScriptedChatServer server = await ScriptedChatServer.StartAsync(
            new ChatScript(ScriptEntry.Text("fast") with { Latency = TimeSpan.Zero }),
            new ScriptedChatServerOptions { Latency = TimeSpan.FromHours(1), TimeProvider = clock },
            CancellationToken.None);

        ModelReply reply = await ModelFor(server).CompleteAsync(new ModelRequest([ModelMessage.User("hi")], []), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal("fast", reply.Text);
    }

    [Fact(Timeout = 30_000)]
    public async Task Post_ReplyWire_OmitsOrNullsFinishReasonAsScripted()
    {
        var script = new ChatScript(
            new ScriptEntry { Reply = new ScriptReply { Content = "a" } },
            new ScriptEntry { Reply = new ScriptReply { Content = "b", FinishReasonIsNull = true } },
            new ScriptEntry { Reply = new ScriptReply { Content = "c", FinishReason = "length", Usage = new ScriptedUsage(3, 4) } });
        await using ScriptedChatServer server = await ScriptedChatServer.StartAsync(script, null, CancellationToken.None);
        const string Body = """{"model":"m","messages":[{"role":"user","content":"x"}]}""";

        var (s1, absent) = await PostRawAsync(server, Body);
        var (_, nulled) = await PostRawAsync(server, Body);
        var (_, length) = await PostRawAsync(server, Body);

        Assert.Equal(HttpStatusCode.OK, s1);
        Assert.False(absent.GetProperty("choices")[0].TryGetProperty("finish_reason", out _));
        Assert.False(absent.TryGetProperty("usage", out _));
        Assert.Equal(JsonValueKind.Null, nulled.GetProperty("choices")[0].GetProperty("finish_reason").ValueKind);
        Assert.Equal("length", length.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal(7, length.GetProperty("usage").GetProperty("total_tokens").GetInt32());
    }

    [Theory(Timeout = 30_000)]
    [InlineData("{not json", 400)]
    [InlineData("""{"model":"m","stream":true,"messages":[]}""", 400)]
    public async Task Post_BadRequest_AnswersOpenAIShapedError(string body, int status)
    {
        await using ScriptedChatServer server = await ScriptedChatServer.StartAsync(new ChatScript(ScriptEntry.Text("x")), null, CancellationToken.None);

        var (code, error) = await PostRawAsync(server, body);

        Assert.Equal(status, (int)code);
        Assert.Equal("invalid_request_error", error.GetProperty("error").GetProperty("type").GetString());
        Assert.Single(server.Unplayed);
    }

    [Fact(Timeout = 30_000)]
    public async Task Post_ConcurrentRequests_EachEntryIsPlayedOnce()
    {
        ScriptEntry[] entries = [.. Enumerable.Range(1, 20).Select(i => ScriptEntry.Text("reply " + i))];
        await using ScriptedChatServer server = await ScriptedChatServer.StartAsync(new ChatScript(entries), null, CancellationToken.None);
        OpenAIChatModel model = ModelFor(server);

        ModelReply[] replies = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => model.CompleteAsync(new ModelRequest([ModelMessage.User("x")], []), CancellationToken.None)));

        Assert.Equal(entries.Select(e => e.Reply!.Content).Order(), replies.Select(r => r.Text).Order());
        Assert.Empty(server.Unplayed);
    }

    [Fact(Timeout = 30_000)]
    public async Task GetModels_ListsTheScriptModel()
    {
        await using ScriptedChatServer server = await ScriptedChatServer.StartAsync(new ChatScript([], model: "demo-model"), null, CancellationToken.None);
        using var http = new HttpClient();

        string json = await http.GetStringAsync(new Uri(server.BaseUrl, "models"));

        Assert.Contains("\"id\":\"demo-model\"", json, StringComparison.Ordinal);
    }

    [Fact(Timeout = 30_000)]
    public async Task RecordMode_ProxiesUpstream_AndItsCassetteReplaysTheSameReplies()
    {
        var upstreamScript = new ChatScript(
            new ScriptEntry { Reply = new ScriptReply { ToolCalls = [new ScriptedToolCall("call_1", "process_refund", """{"order_id":"A8472""")], Usage = new ScriptedUsage(10, 5) } },
            new ScriptEntry { Reply = new ScriptReply { Content = "done", FinishReasonIsNull = true } },
            ScriptEntry.Fail(429, "slow down"),
            new ScriptEntry { Raw = """{"id":"x","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"n","arguments":{"a":1}}}]},"finish_reason":"tool_calls"}]}""" });
        await using ScriptedChatServer upstream = await ScriptedChatServer.StartAsync(upstreamScript, new ScriptedChatServerOptions { RequiredApiKey = "real-key" }, CancellationToken.None);
        await using ScriptedChatServer recorder = await ScriptedChatServer.StartAsync(new ChatScript(), new ScriptedChatServerOptions { RecordFrom = upstream.BaseUrl, RecordApiKey = "real-key" }, CancellationToken.None);
        var request = new ModelRequest([ModelMessage.User("refund A8472")], [Refund]);
        List<object> live = await CallFourTimesAsync(ModelFor(recorder), request);
        string path = Path.Combine(Path.GetTempPath(), $"cassette-{Environment.ProcessId}-{Environment.TickCount64}.json");
        await recorder.RecordedScript.SaveAsync(path, CancellationToken.None);

        await using ScriptedChatServer replay = await ScriptedChatServer.StartFromFileAsync(path, null, CancellationToken.None);
        List<object> replayed = await CallFourTimesAsync(ModelFor(replay), request);
        File.Delete(path);

        Assert.Equal(live.Count, replayed.Count);
        for (int i = 0; i < live.Count; i++)
        {
            Assert.Equal(JsonSerializer.Serialize(live[i]), JsonSerializer.Serialize(replayed[i]));
        }

        Assert.Equal(4, upstream.Requests.Count);
        Assert.Null(((ModelReply)live[1]).FinishReason);
        Assert.Equal(429, live[2]);
        Assert.Equal("""{"a":1}""", ((ModelReply)live[3]).ToolCalls[0].Arguments);
        Assert.Empty(replay.Unplayed);
    }

    private static async Task<List<object>> CallFourTimesAsync(OpenAIChatModel model, ModelRequest request)
    {
        var results = new List<object>();
        for (int i = 0; i < 4; i++)
        {
            try
            {
                ModelReply reply = await model.CompleteAsync(request, CancellationToken.None);
                results.Add(reply with { ResponseId = null });
            }
            catch (ModelCallException e)
            {
                results.Add(e.StatusCode ?? 0);
            }
        }

        return results;
    }

    [Fact]
    public void Parse_CassetteRoundTrip_KeepsEveryEntryKind()
    {
        var script = new ChatScript(
            [
                new ScriptEntry
                {
                    Name = "n",
                    When = new ScriptMatch { LastRole = "tool", LastContains = "x", AnyContains = "y", ToolResultFor = "c1", CallNumber = 3 },
                    Repeat = true,
                    Latency = TimeSpan.FromMilliseconds(250),
                    Reply = new ScriptReply { Content = "t", ToolCalls = [new ScriptedToolCall("c", "f", "{bad")], FunctionCall = new ScriptedFunctionCall("g", "{}"), FinishReasonIsNull = true, Usage = new ScriptedUsage(1, 2, 4) },
                },
                new ScriptEntry { Error = new ScriptError(503, "busy", "server_error", 2) },
                new ScriptEntry { Raw = """{"a":[1,2]}""", RawStatus = 202 },
            ],
            model: "mm");

        ChatScript back = ChatScript.Parse(script.ToJson());

        Assert.Equal("mm", back.Model);
        Assert.Equal(script.Entries[0] with { Reply = null }, back.Entries[0] with { Reply = null });
        Assert.Equal(script.Entries[0].Reply!.ToolCalls, back.Entries[0].Reply!.ToolCalls);
        Assert.Equal(script.Entries[0].Reply! with { ToolCalls = [] }, back.Entries[0].Reply! with { ToolCalls = [] });
        Assert.Equal(script.Entries[1], back.Entries[1]);
        Assert.Equal(script.Entries[2], back.Entries[2]);
    }

    [Theory]
    [InlineData("""{"entries":[{"reply":{"content":"a"},"error":{"status":500}}]}""", "exactly one of reply, error or raw")]
    [InlineData("""{"entries":[{"name":"x"}]}""", "exactly one of reply, error or raw")]
    [InlineData("""{"entries":[{"reply":{},"when":{"lastRol":"user"}}]}""", "unknown condition 'lastRol'")]
    [InlineData("""{"entries":[{"reply":{},"delay":5}]}""", "unknown member 'delay'")]
    [InlineData("""{"entries":[{"reply":{"tool_calls":[{"name":"f","arguments":"{}"}]}}]}""", "id is required")]
    [InlineData("""{"entries":[{"error":{"status":"500"}}]}""", "entries[0].error.status must be an integer")]
    [InlineData("""{"entries":{}}""", "array of entries")]
    [InlineData("""[{"reply":{}}""", "not JSON")]
    public void Parse_InvalidCassette_ThrowsFormatExceptionNamingTheProblem(string json, string expected)
    {
        FormatException e = Assert.Throws<FormatException>(() => ChatScript.Parse(json));

        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }
}
