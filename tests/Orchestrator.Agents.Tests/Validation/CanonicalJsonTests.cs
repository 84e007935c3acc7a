using System.Text.Json;

namespace Orchestrator.Agents.Tests.Validation;

public sealed class CanonicalJsonTests
{
    private static string Canonical(string json)
    {
        using var document = JsonDocument.Parse(json);
        return CanonicalJson.Canonicalize(document.RootElement);
    }

    [Fact]
    public void Canonicalize_KeyOrderAndWhitespace_AreNormalized()
    {
        Assert.Equal("""{"a":[1,{"x":true,"y":null}],"b":"s"}""", Canonical("""{ "b" : "s",  "a": [ 1, {"y": null, "x": true} ] }"""));
    }

    [Theory]
    [InlineData("47", "47")]
    [InlineData("47.0", "47")]
    [InlineData("47.000", "47")]
    [InlineData("4.7e1", "47")]
    [InlineData("4.7E+1", "47")]
    [InlineData("-0", "0")]
    [InlineData("-0.0", "0")]
    [InlineData("0.10", "0.1")]
    [InlineData("1e-3", "0.001")]
    [InlineData("123456789012345678.25", "123456789012345678.25")]
    [InlineData("1e-40", "1e-40")]
    [InlineData("1e300", "1e+300")]
    public void NormalizeNumber_EquivalentSpellings_GiveOneForm(string raw, string expected)
    {
        Assert.Equal(expected, CanonicalJson.NormalizeNumber(raw));
    }

    [Fact]
    public void Canonicalize_Strings_EscapeOnlyWhatJsonRequires()
    {
        Assert.Equal("\"é \\\"q\\\" \\\\ \\n \\u0001 <>&'\"", Canonical("\"\\u00e9 \\\"q\\\" \\\\ \\n \\u0001 <>&'\""));
    }

    [Fact]
    public void Canonicalize_SameMeaningDifferentSpelling_SameHash()
    {
        var a = Canonical("""{"order_id":"A8472","amount":47.00}""");
        var b = Canonical("""{"amount":4.7e1,   "order_id":"A8472"}""");

        Assert.Equal(a, b);
        Assert.Equal(CanonicalJson.Sha256Hex(a), CanonicalJson.Sha256Hex(b));
        Assert.Matches("^[0-9a-f]{64}$", CanonicalJson.Sha256Hex(a));
    }
}
