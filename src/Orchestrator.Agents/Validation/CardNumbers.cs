namespace Orchestrator.Agents;

/// <summary>Payment card number checks shared by business rules and log redaction.</summary>
public static class CardNumbers
{
    /// <summary>True when <paramref name="digits"/> (ASCII digits only) passes the Luhn check.</summary>
    public static bool PassesLuhn(ReadOnlySpan<char> digits)
    {
        if (digits.IsEmpty)
        {
            return false;
        }

        int sum = 0;
        bool doubleIt = false;
        for (int i = digits.Length - 1; i >= 0; i--)
        {
            int d = digits[i] - '0';
            if (d is < 0 or > 9)
            {
                return false;
            }

            if (doubleIt)
            {
                d *= 2;
                if (d > 9)
                {
                    d -= 9;
                }
            }

            sum += d;
            doubleIt = !doubleIt;
        }

        return sum % 10 == 0;
    }
}
