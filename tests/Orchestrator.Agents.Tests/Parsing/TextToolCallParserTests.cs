using System.Text.Json;

namespace Orchestrator.Agents.Tests.Parsing;

public sealed class TextToolCallParserTests
{
    private static void AssertArguments(string expectedJson, string actual)
    {
        using var expected = JsonDocument.Parse(expectedJson);
        using var parsed = JsonDocument.Parse(actual);
        Assert.Equal(CanonicalJson.Canonicalize(expected.RootElement), CanonicalJson.Canonicalize(parsed.RootElement));
    }

    [Theory]
    [InlineData("Hello! How can I help you today?")]
    [InlineData("Use {braces} freely, and [brackets] too; name: arguments.")]
    [InlineData("Here is the data:\n```json\n{\"order_id\": \"A8472\", \"status\": \"shipped\"}\n```")]
    [InlineData("")]
    public void Parse_PlainText_NoCallsNoErrors(string text)
    {
        var result = TextToolCallParser.Parse(text);

        Assert.True(result.IsPlainText);
        Assert.Equal(text.Trim(), result.Text);
    }

    [Fact]
    public void Parse_HermesSeveralToolCallTags_AllCallsInOrderAndTextKept()
    {
        const string text = """
            Let me check both.
            <tool_call>
            {"name": "lookup_order", "arguments": {"order_id": "A8472"}}
            </tool_call>
            <tool_call>
            {"name": "get_customer", "arguments": {"customer_id": "C7"}}
            </tool_call>
            """;

        var result = TextToolCallParser.Parse(text);

        Assert.Empty(result.Errors);
        Assert.Equal(["lookup_order", "get_customer"], result.Calls.Select(c => c.Name));
        AssertArguments("""{"order_id":"A8472"}""", result.Calls[0].RawArguments);
        Assert.Equal("Let me check both.", result.Text);
    }

    [Fact]
    public void Parse_QwenUnclosedLastTag_StillParsed()
    {
        var result = TextToolCallParser.Parse("""<tool_call>{"name":"lookup_order","arguments":{"order_id":"A1"}}""");

        Assert.Equal("lookup_order", Assert.Single(result.Calls).Name);
    }

    [Fact]
    public void Parse_ArgumentsAsEncodedString_KeptRaw()
    {
        var result = TextToolCallParser.Parse("""<tool_call>{"name":"lookup_order","arguments":"{\"order_id\":\"A1\"}"}</tool_call>""");

        Assert.Equal("""{"order_id":"A1"}""", Assert.Single(result.Calls).RawArguments);
    }

    [Fact]
    public void Parse_LlamaPythonTagSemicolonSeparated_AllCalls()
    {
        const string text = """<|python_tag|>{"name": "lookup_order", "parameters": {"order_id": "A1"}}; {"name": "lookup_order", "parameters": {"order_id": "A2"}}<|eom_id|>""";

        var result = TextToolCallParser.Parse(text);

        Assert.Empty(result.Errors);
        Assert.Equal(2, result.Calls.Count);
        AssertArguments("""{"order_id":"A2"}""", result.Calls[1].RawArguments);
        Assert.Equal("", result.Text);
    }

    [Fact]
    public void Parse_LlamaPythonStyleBuiltinCall_IsParseErrorNotDropped()
    {
        var result = TextToolCallParser.Parse("""<|python_tag|>brave_search.call(query="weather in Paris")<|eom_id|>""");

        Assert.Empty(result.Calls);
        var error = Assert.Single(result.Errors);
        Assert.Equal("python_tag", error.Format);
        Assert.Contains("python-style", error.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_FunctionTag_NameFromTagArgumentsFromBody()
    {
        var result = TextToolCallParser.Parse("""Checking.<function=lookup_order>{"order_id": "A8472"}</function> <function=get_customer>{"customer_id":"C1"}</function>""");

        Assert.Equal(["lookup_order", "get_customer"], result.Calls.Select(c => c.Name));
        AssertArguments("""{"order_id":"A8472"}""", result.Calls[0].RawArguments);
        Assert.Equal("Checking.", result.Text);
    }

    [Fact]
    public void Parse_FencedJsonObjectAndArray_AllCalls()
    {
        const string text = """
            ```json
            {"name": "lookup_order", "arguments": {"order_id": "A1"}}
            ```
            and
            ```
            [{"name": "get_customer", "arguments": {"customer_id": "C1"}}, {"name": "get_customer", "arguments": {"customer_id": "C2"}}]
            ```
            """;

        var result = TextToolCallParser.Parse(text);

        Assert.Equal(["lookup_order", "get_customer", "get_customer"], result.Calls.Select(c => c.Name));
        Assert.Equal("and", result.Text);
    }

    [Fact]
    public void Parse_WholeReplyIsJsonCall_Parsed()
    {
        var result = TextToolCallParser.Parse("""{"name": "lookup_order", "parameters": {"order_id": "A1"}}""");

        Assert.Equal("lookup_order", Assert.Single(result.Calls).Name);
    }

    [Fact]
    public void Parse_OpenAiShapedEntryWithId_UsesItsId()
    {
        const string text = """
            ```json
            [{"id":"call_abc","type":"function","function":{"name":"lookup_order","arguments":"{\"order_id\":\"A1\"}"}}]
            ```
            """;

        var result = TextToolCallParser.Parse(text);

        var call = Assert.Single(result.Calls);
        Assert.Equal(("call_abc", "lookup_order", """{"order_id":"A1"}"""), (call.Id, call.Name, call.RawArguments));
    }

    [Theory]
    [InlineData("""<tool_call>{"name": "lookup_order", "arguments": {"order_id": "A1"</tool_call>""", "tool_call", "lookup_order")]
    [InlineData("""<tool_call>{"arguments": {"order_id": "A1"}}</tool_call>""", "tool_call", null)]
    [InlineData("""<tool_call></tool_call>""", "tool_call", null)]
    [InlineData("""<function=lookup_order>{order_id: A1}</function>""", "function", "lookup_order")]
    [InlineData("```json\n{\"name\": \"lookup_order\", \"arguments\": {\"order_id\": }}\n```", "fenced_json", "lookup_order")]
    [InlineData("""{"name": "lookup_order", "arguments": ["A1"]}""", "json", "lookup_order")]
    public void Parse_LooksLikeCallButBroken_BecomesParseError(string text, string format, string? name)
    {
        var result = TextToolCallParser.Parse(text);

        Assert.Empty(result.Calls);
        var error = Assert.Single(result.Errors);
        Assert.Equal(format, error.Format);
        Assert.Equal(name, error.Name);
        Assert.StartsWith("call_", error.Id, StringComparison.Ordinal);
        var rejection = error.ToRejection();
        Assert.Equal(ToolCallErrorKind.UnparseableCall, rejection.Kind);
        Assert.Equal(error.Id, rejection.ToolCallId);
        Assert.Contains("unparseable_call", rejection.ToModelContent(), StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_GoodAndBrokenMixed_BothReportedWithPositions()
    {
        var result = TextToolCallParser.Parse("""<tool_call>{"name":"a","arguments":{}}</tool_call><tool_call>{"name":"b",</tool_call><tool_call>{"name":"c","arguments":{}}</tool_call>""");

        Assert.Equal(["a", "c"], result.Calls.Select(c => c.Name));
        Assert.Equal(1, Assert.Single(result.Errors).Position);
    }

    [Fact]
    public void Parse_NoIdsInText_DeterministicDistinctIdsDependingOnSeed()
    {
        const string text = """<tool_call>{"name":"a","arguments":{}}</tool_call><tool_call>{"name":"a","arguments":{}}</tool_call>""";

        var first = TextToolCallParser.Parse(text, "turn-1/0");
        var again = TextToolCallParser.Parse(text, "turn-1/0");
        var otherTurn = TextToolCallParser.Parse(text, "turn-2/0");

        Assert.Equal(first.Calls.Select(c => c.Id), again.Calls.Select(c => c.Id));
        Assert.NotEqual(first.Calls[0].Id, first.Calls[1].Id);
        Assert.NotEqual(first.Calls[0].Id, otherTurn.Calls[0].Id);
        Assert.All(first.Calls, c => Assert.Matches("^call_[0-9a-f]{24}$", c.Id));
    }

    [Fact]
    public void Parse_ParsedCalls_ValidateLikeApiCalls()
    {
        var result = TextToolCallParser.Parse("""<tool_call>{"name":"process_refund","arguments":{"order_id":"4417-2290-1138","amount":47}}</tool_call>""");

        var report = new ToolCallValidator(SupportDesk.Registry()).ValidateAll(result.Calls);

        Assert.Equal("order_id", Assert.Single(report.Rejected).Errors[0].Argument);
    }
}
