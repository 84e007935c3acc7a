using System.Text.Json;
using Orchestrator.Agents.Models.Scripted;

namespace Orchestrator.Agents.Models.Tests;

public sealed class OpenAIChatModelTests
{
    private const string OrderSchema = """{"type":"object","properties":{"order_id":{"type":"string"}},"required":["order_id"]}""";

    private static readonly ModelToolDefinition LookupOrder = new("lookup_order", "Look up an order by id.", OrderSchema);
    private static readonly ModelToolDefinition GetCustomer = new("get_customer", "Look up a customer.", """{"type":"object","properties":{"customer_id":{"type":"string"}}}""");

    private static ModelRequest Ask(string text, params ModelToolDefinition[] tools) =>
        new([ModelMessage.System("You are a support agent."), ModelMessage.User(text)], tools);

    private static async Task<(ScriptedChatServer Server, OpenAIChatModel Model)> StartAsync(ChatScript script, Func<OpenAIChatModelOptions, OpenAIChatModelOptions>? configure = null)
    {
        ScriptedChatServer server = await ScriptedChatServer.StartAsync(script, new ScriptedChatServerOptions { RequiredApiKey = "test-key" }, CancellationToken.None);
        var options = new OpenAIChatModelOptions { BaseUrl = server.BaseUrl, ApiKey = "test-key", Model = "gpt-test", MaxRetries = 0 };
        return (server, new OpenAIChatModel(configure?.Invoke(options) ?? options));
    }

    private static ScriptEntry Reply(ScriptReply reply) => new() { Reply = reply };

    [Fact(Timeout = 30_000)]
    public async Task CompleteAsync_ParallelToolCalls_ReturnsEveryCallInOrder()
    {
        var (server, model) = await StartAsync(new ChatScript(ScriptEntry.Calls(
            new ScriptedToolCall("call_a", "lookup_order", """{"order_id":"A8472"}"""),
            new ScriptedToolCall("call_b", "get_customer", """{"customer_id":"C17"}"""),
            new ScriptedToolCall("call_c", "lookup_order", """{"order_id":"A9000"}"""))));
        await using (server)
        {
            ModelReply reply = await model.CompleteAsync(Ask("Two orders please", LookupOrder, GetCustomer), CancellationToken.None);

            Assert.Equal(
                [new ModelToolCall("call_a", "lookup_order", """{"order_id":"A8472"}"""), new ModelToolCall("call_b", "get_customer", """{"customer_id":"C17"}"""), new ModelToolCall("call_c", "lookup_order", """{"order_id":"A9000"}""")],
                reply.ToolCalls);
            Assert.Equal("tool_calls", reply.FinishReason);
            Assert.True(reply.HasToolCalls);
            Assert.False(reply.IsTruncated);
            Assert.Null(reply.Text);
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task CompleteAsync_FinishReasonStopWithToolCalls_StillReturnsTheCalls()
    {
        var (server, model) = await StartAsync(new ChatScript(Reply(new ScriptReply
        {
            Content = "Let me check.",
            ToolCalls = [new ScriptedToolCall("call_1", "lookup_order", """{"order_id":"A1234"}""")],
            FinishReason = "stop",
        })));
        await using (server)
        {
            ModelReply reply = await model.CompleteAsync(Ask("Where is A1234?", LookupOrder), CancellationToken.None);

            Assert.Equal("stop", reply.FinishReason);
            Assert.Equal([new ModelToolCall("call_1", "lookup_order", """{"order_id":"A1234"}""")], reply.ToolCalls);
            Assert.Equal("Let me check.", reply.Text);
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task CompleteAsync_FinishReasonAbsent_ReturnsNullFinishReasonAndTheCalls()
    {
        var (server, model) = await StartAsync(new ChatScript(Reply(new ScriptReply
        {
            ToolCalls = [new ScriptedToolCall("call_1", "lookup_order", """{"order_id":"A1234"}""")],
        })));
        await using (server)
        {
            ModelReply reply = await model.CompleteAsync(Ask("Where is A1234?", LookupOrder), CancellationToken.None);

            Assert.Null(reply.FinishReason);
            Assert.Single(reply.ToolCalls);
            Assert.False(reply.IsTruncated);
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task CompleteAsync_FinishReasonNull_ReturnsNullFinishReason()
    {
        var (server, model) = await StartAsync(new ChatScript(Reply(new ScriptReply { Content = "Hello!", FinishReasonIsNull = true })));
        await using (server)
        {
            ModelReply reply = await model.CompleteAsync(Ask("hello"), CancellationToken.None);

            Assert.Null(reply.FinishReason);
            Assert.Equal("Hello!", reply.Text);
            Assert.Empty(reply.ToolCalls);
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task CompleteAsync_FinishReasonFunctionCallWithToolCalls_ReturnsTheCalls()
    {
        var (server, model) = await StartAsync(new ChatScript(Reply(new ScriptReply
        {
            ToolCalls = [new ScriptedToolCall("call_9", "lookup_order", """{"order_id":"A5555"}""")],
            FinishReason = "function_call",
        })));
        await using (server)
        {
            ModelReply reply = await model.CompleteAsync(Ask("A5555?", LookupOrder), CancellationToken.None);

            Assert.Equal("function_call", reply.FinishReason);
            Assert.Equal([new ModelToolCall("call_9", "lookup_order", """{"order_id":"A5555"}""")], reply.ToolCalls);
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task CompleteAsync_LegacyFunctionCall_BecomesAToolCallWithAStableId()
    {
        var (server, model) = await StartAsync(new ChatScript(Reply(new ScriptReply
        {
            FunctionCall = new ScriptedFunctionCall("lookup_order", """{"order_id":"A7777"}"""),
            FinishReason = "function_call",
        })));
        await using (server)
        {
            ModelReply reply = await model.CompleteAsync(Ask("A7777?", LookupOrder), CancellationToken.None);

            ModelToolCall call = Assert.Single(reply.ToolCalls);
            Assert.Equal("lookup_order", call.Name);
            Assert.Equal("""{"order_id":"A7777"}""", call.Arguments);
            Assert.Equal("call_chatcmpl-scripted-1_0", call.Id);
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task CompleteAsync_FinishReasonLength_IsFlaggedTruncated()
    {
        var (server, model) = await StartAsync(new ChatScript(Reply(new ScriptReply
        {
            ToolCalls = [new ScriptedToolCall("call_1", "lookup_order", """{"order_id":"A12""")],
            FinishReason = "length",
            Usage = new ScriptedUsage(50, 16),
        })), o => o with { MaxOutputTokens = 16 });
        await using (server)
        {
            ModelReply reply = await model.CompleteAsync(Ask("A12?", LookupOrder), CancellationToken.None);

            Assert.True(reply.IsTruncated);
            Assert.Equal("length", reply.FinishReason);
            Assert.Equal("""{"order_id":"A12""", Assert.Single(reply.ToolCalls).Arguments);
            using JsonDocument sent = JsonDocument.Parse(Assert.Single(server.Requests).Body);
            Assert.Equal(16, sent.RootElement.GetProperty("max_completion_tokens").GetInt32());
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task CompleteAsync_Usage_ReportsTheServersNumbers()
    {
        var (server, model) = await StartAsync(new ChatScript(ScriptEntry.Text("Hi there.", usage: new ScriptedUsage(123, 45, 170))));
        await using (server)
        {
            ModelReply reply = await model.CompleteAsync(Ask("hello"), CancellationToken.None);

            Assert.Equal(new ModelUsage(123, 45, 170), reply.Usage);
            Assert.Equal("Hi there.", reply.Text);
            Assert.Equal("stop", reply.FinishReason);
            Assert.Equal("gpt-test", reply.Model);
            Assert.Equal("chatcmpl-scripted-1", reply.ResponseId);
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task CompleteAsync_NoUsage_ReturnsNullUsage()
    {
        var (server, model) = await StartAsync(new ChatScript(ScriptEntry.Text("Hi.")));
        await using (server)
        {
            ModelReply reply = await model.CompleteAsync(Ask("hello"), CancellationToken.None);

            Assert.Null(reply.Usage);
        }
    }

    [Theory(Timeout = 30_000)]
    [InlineData("""{"order_id": "A1234",""")]
    [InlineData("""{'order_id': 'A1234'}""")]
    [InlineData("not json at all")]
    [InlineData("")]
    public async Task CompleteAsync_MalformedArguments_AreKeptRawAndUnparsed(string arguments)
    {
        var (server, model) = await StartAsync(new ChatScript(ScriptEntry.Calls(new ScriptedToolCall("call_1", "lookup_order", arguments))));
        await using (server)
        {
            ModelReply reply = await model.CompleteAsync(Ask("A1234?", LookupOrder), CancellationToken.None);

            Assert.Equal(arguments, Assert.Single(reply.ToolCalls).Arguments);
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task CompleteAsync_ArgumentsSentAsAnObject_KeepsTheirJsonText()
    {
        string raw = """{"id":"r1","model":"lax","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"type":"function","function":{"name":"lookup_order","arguments":{"order_id":"A1"}}}]},"finish_reason":"tool_calls"}]}""";
        var (server, model) = await StartAsync(new ChatScript(new ScriptEntry { Raw = raw }));
        await using (server)
        {
            ModelReply reply = await model.CompleteAsync(Ask("A1?", LookupOrder), CancellationToken.None);

            ModelToolCall call = Assert.Single(reply.ToolCalls);
            Assert.Equal("""{"order_id":"A1"}""", call.Arguments);
            Assert.Equal("call_r1_0", call.Id);
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task CompleteAsync_WithTools_SendsToolsToolChoiceAutoAndParallelFlag()
    {
        var (server, model) = await StartAsync(new ChatScript(ScriptEntry.Text("ok")), o => o with { ParallelToolCalls = false });
        await using (server)
        {
            await model.CompleteAsync(Ask("hello", LookupOrder, GetCustomer), CancellationToken.None);

            RecordedChatRequest sent = Assert.Single(server.Requests);
            Assert.Equal("gpt-test", sent.Model);
            Assert.Equal("Bearer test-key", sent.Authorization);
            Assert.Equal("auto", sent.ToolChoice);
            Assert.False(sent.ParallelToolCalls);
            Assert.Equal(["lookup_order", "get_customer"], sent.Tools.Select(t => t.Name));
            Assert.Equal("Look up an order by id.", sent.Tools[0].Description);
            Assert.Equal(OrderSchema, sent.Tools[0].Parameters);
            Assert.Equal(["system", "user"], sent.Messages.Select(m => m.Role));
            Assert.Equal("hello", sent.Messages[1].Content);
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task CompleteAsync_ParallelToolCallsUnset_LeavesTheFlagOut()
    {
        var (server, model) = await StartAsync(new ChatScript(ScriptEntry.Text("ok")));
        await using (server)
        {
            await model.CompleteAsync(Ask("hello", LookupOrder), CancellationToken.None);

            RecordedChatRequest sent = Assert.Single(server.Requests);
            Assert.Null(sent.ParallelToolCalls);
            Assert.Equal("auto", sent.ToolChoice);
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task CompleteAsync_ForcedFunctionOrRequired_SendsThatToolChoice()
    {
        var (server, model) = await StartAsync(new ChatScript(ScriptEntry.Text("a"), ScriptEntry.Text("b")), o => o with { ToolChoice = ModelToolChoice.Required, ParallelToolCalls = true });
        await using (server)
        {
            await model.CompleteAsync(Ask("x", LookupOrder), CancellationToken.None);
            await model.CompleteAsync(Ask("y", LookupOrder) with { ToolChoice = ModelToolChoice.Function("lookup_order") }, CancellationToken.None);

            Assert.Equal(["required", "function:lookup_order"], server.Requests.Select(r => r.ToolChoice));
            Assert.All(server.Requests, r => Assert.True(r.ParallelToolCalls));
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task CompleteAsync_NoTools_SendsNeitherToolsNorToolChoice()
    {
        var (server, model) = await StartAsync(new ChatScript(ScriptEntry.Text("Hello!")), o => o with { ParallelToolCalls = true });
        await using (server)
        {
            ModelReply reply = await model.CompleteAsync(Ask("hello"), CancellationToken.None);

            RecordedChatRequest sent = Assert.Single(server.Requests);
            Assert.Empty(sent.Tools);
            Assert.Null(sent.ToolChoice);
            Assert.Null(sent.ParallelToolCalls);
            Assert.Equal("Hello!", reply.Text);
            Assert.False(reply.HasToolCalls);
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task CompleteAsync_ConversationWithToolResults_SendsCallsBackRawAndResultsMatchedById()
    {
        var (server, model) = await StartAsync(new ChatScript(ScriptEntry.Text("Order A1 shipped; A2 is unknown.")));
        await using (server)
        {
            var calls = new[] { new ModelToolCall("call_1", "lookup_order", """{"order_id":"A1"}"""), new ModelToolCall("call_2", "lookup_order", """{"order_id": broken""") };
            var request = new ModelRequest(
                [
                    ModelMessage.User("A1 and A2?"),
                    ModelMessage.Assistant("Checking both.", calls),
                    ModelMessage.ToolResult("call_2", """{"error":"arguments are not valid JSON"}"""),
                    ModelMessage.ToolResult("call_1", """{"status":"shipped"}"""),
                ],
                [LookupOrder]);

            await model.CompleteAsync(request, CancellationToken.None);

            RecordedChatRequest sent = Assert.Single(server.Requests);
            Assert.Equal(["user", "assistant", "tool", "tool"], sent.Messages.Select(m => m.Role));
            Assert.Equal(calls.Select(c => new ScriptedToolCall(c.Id, c.Name, c.Arguments)), sent.Messages[1].ToolCalls);
            Assert.Equal("Checking both.", sent.Messages[1].Content);
            Assert.Equal("""{"status":"shipped"}""", sent.ToolResultFor("call_1"));
            Assert.Equal("""{"error":"arguments are not valid JSON"}""", sent.ToolResultFor("call_2"));
        }
    }

    [Theory(Timeout = 30_000)]
    [InlineData(429, true)]
    [InlineData(500, true)]
    [InlineData(503, true)]
    [InlineData(400, false)]
    [InlineData(404, false)]
    public async Task CompleteAsync_ServerError_ThrowsModelCallExceptionWithTransience(int status, bool transient)
    {
        var (server, model) = await StartAsync(new ChatScript(ScriptEntry.Fail(status, "scripted failure")));
        await using (server)
        {
            ModelCallException e = await Assert.ThrowsAsync<ModelCallException>(() => model.CompleteAsync(Ask("hello"), CancellationToken.None));

            Assert.Equal(status, e.StatusCode);
            Assert.Equal(transient, e.IsTransient);
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task CompleteAsync_WrongApiKey_ThrowsNonTransient401()
    {
        ScriptedChatServer server = await ScriptedChatServer.StartAsync(new ChatScript(ScriptEntry.Text("x")), new ScriptedChatServerOptions { RequiredApiKey = "right" }, CancellationToken.None);
        await using (server)
        {
            var model = new OpenAIChatModel(new OpenAIChatModelOptions { BaseUrl = server.BaseUrl, ApiKey = "wrong", Model = "m", MaxRetries = 0 });

            ModelCallException e = await Assert.ThrowsAsync<ModelCallException>(() => model.CompleteAsync(Ask("hello"), CancellationToken.None));

            Assert.Equal(401, e.StatusCode);
            Assert.False(e.IsTransient);
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task CompleteAsync_TransientErrorThenReply_SdkRetriesWithinMaxRetries()
    {
        var (server, model) = await StartAsync(
            new ChatScript(new ScriptEntry { Error = new ScriptError(503, "overloaded", RetryAfterSeconds: 0) }, ScriptEntry.Text("recovered")),
            o => o with { MaxRetries = 1 });
        await using (server)
        {
            ModelReply reply = await model.CompleteAsync(Ask("hello"), CancellationToken.None);

            Assert.Equal("recovered", reply.Text);
            Assert.Equal(2, server.Requests.Count);
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task CompleteAsync_NothingListening_ThrowsTransient()
    {
        ScriptedChatServer server = await ScriptedChatServer.StartAsync(new ChatScript(), null, CancellationToken.None);
        Uri dead = server.BaseUrl;
        await server.DisposeAsync();
        var model = new OpenAIChatModel(new OpenAIChatModelOptions { BaseUrl = dead, ApiKey = "k", Model = "m", MaxRetries = 0 });

        ModelCallException e = await Assert.ThrowsAsync<ModelCallException>(() => model.CompleteAsync(Ask("hello"), CancellationToken.None));

        Assert.True(e.IsTransient);
        Assert.Null(e.StatusCode);
    }

    [Fact(Timeout = 30_000)]
    public async Task CompleteAsync_SlowerThanNetworkTimeout_ThrowsTransientWithoutStatus()
    {
        var (server, model) = await StartAsync(
            new ChatScript(ScriptEntry.Text("late") with { Latency = TimeSpan.FromSeconds(20) }),
            o => o with { NetworkTimeout = TimeSpan.FromMilliseconds(300) });
        await using (server)
        {
            ModelCallException e = await Assert.ThrowsAsync<ModelCallException>(() => model.CompleteAsync(Ask("hello"), CancellationToken.None));

            Assert.True(e.IsTransient);
            Assert.Null(e.StatusCode);
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task CompleteAsync_CallerCancels_ThrowsOperationCanceled()
    {
        var (server, model) = await StartAsync(new ChatScript(ScriptEntry.Text("late") with { Latency = TimeSpan.FromSeconds(20) }));
        await using (server)
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));

            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => model.CompleteAsync(Ask("hello"), cts.Token));
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task CompleteAsync_NotAChatCompletion_ThrowsNonTransient()
    {
        var (server, model) = await StartAsync(new ChatScript(new ScriptEntry { Raw = """{"unexpected":true}""" }));
        await using (server)
        {
            ModelCallException e = await Assert.ThrowsAsync<ModelCallException>(() => model.CompleteAsync(Ask("hello"), CancellationToken.None));

            Assert.False(e.IsTransient);
        }
    }

    [Fact]
    public void ModelReply_JsonRoundTrip_KeepsEveryField()
    {
        var reply = new ModelReply
        {
            Text = "t",
            ToolCalls = [new ModelToolCall("c1", "n", "{bad")],
            FinishReason = null,
            IsTruncated = true,
            Usage = new ModelUsage(1, 2, 3),
            Model = "m",
            ResponseId = "r",
        };

        string json = JsonSerializer.Serialize(reply, JsonSerializerOptions.Web);
        ModelReply back = JsonSerializer.Deserialize<ModelReply>(json, JsonSerializerOptions.Web)!;

        Assert.Equal(reply.ToolCalls, back.ToolCalls);
        Assert.Equal(reply with { ToolCalls = back.ToolCalls }, back);
        Assert.DoesNotContain("hasToolCalls", json, StringComparison.Ordinal);
    }

    [Fact]
    public void ModelMessage_JsonRoundTrip_KeepsRoleCallsAndToolCallId()
    {
        ModelMessage[] messages = [ModelMessage.Assistant(null, [new ModelToolCall("c1", "n", "{}")]), ModelMessage.ToolResult("c1", "ok")];

        string json = JsonSerializer.Serialize(messages, JsonSerializerOptions.Web);
        ModelMessage[] back = JsonSerializer.Deserialize<ModelMessage[]>(json, JsonSerializerOptions.Web)!;

        Assert.Contains("\"assistant\"", json, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(messages[0].ToolCalls, back[0].ToolCalls);
        Assert.Equal("c1", back[1].ToolCallId);
        Assert.Equal(ModelRole.Tool, back[1].Role);
    }

    [Theory]
    [InlineData("", "k", "m")]
    [InlineData("ftp://x/", "k", "m")]
    [InlineData("http://x/v1/", "", "m")]
    [InlineData("http://x/v1/", "k", " ")]
    public void Constructor_InvalidOptions_Throws(string url, string key, string modelName)
    {
        Uri uri = url.Length == 0 ? new Uri("relative/path", UriKind.Relative) : new Uri(url);

        Assert.Throws<ArgumentException>(() => new OpenAIChatModel(new OpenAIChatModelOptions { BaseUrl = uri, ApiKey = key, Model = modelName }));
    }
}
