using System.Security.Cryptography;
using System.Text.Json.Nodes;

namespace Orchestrator.Agents.Tests.Turn;

public sealed record CardArgs(string CustomerId, string CardNumber, int Cvv);

public sealed class SensitiveValueTests
{
    private static readonly byte[] KeyA = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();
    private static readonly byte[] KeyB = Enumerable.Range(100, 32).Select(i => (byte)i).ToArray();

    private static ToolRegistry Tools() => new ToolRegistryBuilder()
        .Add(ToolDefinition.FromArguments<CardArgs>("pay", "Pay.") with { SensitiveArguments = ["card_number", "cvv"] })
        .Build();

    [Fact]
    public void Seal_SameValueTwice_SameTextDifferentValuesDifferAndBothOpen()
    {
        var protector = new SensitiveValueProtector(KeyA);

        string a1 = protector.Seal("\"4111111111111111\""), a2 = protector.Seal("\"4111111111111111\""), b = protector.Seal("\"4000000000000002\"");

        Assert.Equal(a1, a2);
        Assert.NotEqual(a1, b);
        Assert.StartsWith($"{SensitiveValueProtector.Prefix}{protector.KeyId}:", a1, StringComparison.Ordinal);
        Assert.DoesNotContain("4111", a1, StringComparison.Ordinal);
        Assert.Equal("\"4111111111111111\"", protector.Open(a1));
        Assert.Equal("\"4000000000000002\"", protector.Open(b));
    }

    [Fact]
    public void Open_AlteredOrForeignOrNotSealed_ThrowsSaying()
    {
        var protector = new SensitiveValueProtector(KeyA);
        string sealedValue = protector.Seal("123");
        char last = sealedValue[^1];
        string altered = sealedValue[..^1] + (last == 'A' ? 'B' : 'A');

        Assert.Contains("altered", Assert.Throws<SensitiveValueException>(() => protector.Open(altered)).Message, StringComparison.Ordinal);
        var foreign = new SensitiveValueProtector(KeyB).Seal("123");
        Assert.Contains(new SensitiveValueProtector(KeyB).KeyId, Assert.Throws<SensitiveValueException>(() => protector.Open(foreign)).Message, StringComparison.Ordinal);
        Assert.Throws<SensitiveValueException>(() => protector.Open("4111111111111111"));
    }

    [Fact]
    public void Open_ValueSealedWithPreviousKey_OpensAfterRotation()
    {
        string old = new SensitiveValueProtector(KeyA).Seal("\"secret\"");
        var rotated = new SensitiveValueProtector(KeyB, KeyA);

        Assert.Equal("\"secret\"", rotated.Open(old));
        Assert.StartsWith($"{SensitiveValueProtector.Prefix}{rotated.KeyId}:", rotated.Seal("\"secret\""), StringComparison.Ordinal);
    }

    [Fact]
    public void Constructor_KeyNotThirtyTwoBytes_Refused()
    {
        Assert.Throws<ArgumentException>(() => new SensitiveValueProtector(new byte[16]));
        Assert.Throws<ArgumentException>(() => SensitiveValueProtector.FromBase64("not base64!"));
        Assert.Throws<ArgumentException>(() => new SensitiveValueProtector(KeyA, KeyA));
    }

    [Fact]
    public void SealArguments_SensitiveStringAndNumber_OnlyThoseSealedOpenGivesOriginalValues()
    {
        var tools = Tools();
        var protector = new SensitiveValueProtector(RandomNumberGenerator.GetBytes(32));
        const string raw = """{"customer_id":"C1","card_number":"4111111111111111","cvv":737}""";

        string stored = SensitiveArguments.Seal(protector, tools, "pay", raw);
        string opened = SensitiveArguments.Open(protector, tools, "pay", stored);

        var node = JsonNode.Parse(stored)!;
        Assert.Equal("C1", (string?)node["customer_id"]);
        Assert.StartsWith(SensitiveValueProtector.Prefix, (string?)node["card_number"], StringComparison.Ordinal);
        Assert.StartsWith(SensitiveValueProtector.Prefix, (string?)node["cvv"], StringComparison.Ordinal);
        Assert.DoesNotContain("737", stored, StringComparison.Ordinal);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(raw), JsonNode.Parse(opened)));
    }

    [Fact]
    public void SealArguments_Unparseable_SealedWholeAndOpenedBack()
    {
        var tools = Tools();
        var protector = new SensitiveValueProtector(KeyA);
        const string raw = """{"card_number":"4111111111111111", oops""";

        string stored = SensitiveArguments.Seal(protector, tools, "pay", raw);

        Assert.True(SensitiveValueProtector.IsSealed(stored));
        Assert.Equal(raw, SensitiveArguments.Open(protector, tools, "pay", stored));
    }

    [Fact]
    public void OpenArguments_PlainValuesOfOldHistories_PassThroughUnchanged()
    {
        var tools = Tools();
        const string raw = """{"customer_id":"C1","card_number":"4111111111111111","cvv":737}""";

        Assert.Same(raw, SensitiveArguments.Open(new SensitiveValueProtector(KeyA), tools, "pay", raw));
        Assert.Same(raw, SensitiveArguments.Open(null, tools, "pay", raw));
        Assert.Same(raw, SensitiveArguments.Seal(null, tools, "pay", raw));
    }

    [Fact]
    public void OpenArguments_SealedButNoKey_ThrowsNamingTheSetting()
    {
        var tools = Tools();
        string stored = SensitiveArguments.Seal(new SensitiveValueProtector(KeyA), tools, "pay", """{"customer_id":"C1","card_number":"4111","cvv":1}""");

        var ex = Assert.Throws<SensitiveValueException>(() => SensitiveArguments.Open(null, tools, "pay", stored));
        Assert.Contains("AgentTurnOptions.SensitiveValues", ex.Message, StringComparison.Ordinal);
    }
}
