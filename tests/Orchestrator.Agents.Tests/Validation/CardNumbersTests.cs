using Xunit;

namespace Orchestrator.Agents.Tests.Validation;

public sealed class CardNumbersTests
{
    [Theory]
    [InlineData("4111111111111111", true)] // Visa test number
    [InlineData("5555555555554444", true)] // Mastercard test number
    [InlineData("378282246310005", true)] // Amex test number (15 digits)
    [InlineData("4111111111111112", false)] // check digit off by one
    [InlineData("41111111111x1111", false)] // not digits
    [InlineData("", false)]
    public void PassesLuhn_KnownNumbers(string digits, bool expected) =>
        Assert.Equal(expected, CardNumbers.PassesLuhn(digits));
}
