using FluentValidation;

namespace SupportDesk;

/// <summary>The formats the desk's ids follow; the account-number incident is caught by <see cref="OrderIdPattern"/>.</summary>
public static class SupportDeskFormats
{
    /// <summary>An order id: the letter A and at least four digits.</summary>
    public const string OrderIdPattern = @"^A\d{4,}$";

    /// <summary>A customer id: C- and four digits.</summary>
    public const string CustomerIdPattern = @"^C-\d{4}$";

    /// <summary>An account number: eight digits.</summary>
    public const string AccountNumberPattern = @"^\d{8}$";

    internal const string NotAnOrderId =
        "must be an order id like A8472 (the letter A and at least four digits); an account or customer number is not an order id";

    /// <summary>Luhn check of a card number's digits.</summary>
    internal static bool PassesLuhn(string digits) => Orchestrator.Agents.CardNumbers.PassesLuhn(digits);
}

// The rules run in orchestrator code and are replayed: they read only the arguments and the immutable order store.
// Messages never quote a sensitive value (account and card numbers).

internal sealed class LookupOrderRules : AbstractValidator<LookupOrderArgs>
{
    public LookupOrderRules() =>
        RuleFor(x => x.OrderId).Matches(SupportDeskFormats.OrderIdPattern).WithMessage("order_id " + SupportDeskFormats.NotAnOrderId);
}

internal sealed class GetCustomerRules : AbstractValidator<GetCustomerArgs>
{
    public GetCustomerRules()
    {
        RuleFor(x => x).Must(x => (x.CustomerId is null) != (x.AccountNumber is null))
            .WithMessage("give exactly one of customer_id and account_number");
        RuleFor(x => x.CustomerId).Matches(SupportDeskFormats.CustomerIdPattern).When(x => x.CustomerId is not null)
            .WithMessage("customer_id must look like C-1029");
        RuleFor(x => x.AccountNumber).Matches(SupportDeskFormats.AccountNumberPattern).When(x => x.AccountNumber is not null)
            .WithMessage("account_number must be eight digits");
    }
}

internal sealed class RefundRules : AbstractValidator<RefundArgs>
{
    public RefundRules(OrderStore store)
    {
        RuleFor(x => x.OrderId).Cascade(CascadeMode.Stop)
            .Matches(SupportDeskFormats.OrderIdPattern).WithMessage("order_id " + SupportDeskFormats.NotAnOrderId)
            .Must(id => store.FindOrder(id) is not null).WithMessage(x => $"order {x.OrderId} does not exist; look the order up first");
        RuleFor(x => x.Amount)
            .Must(a => decimal.Round(a, 2) == a).WithMessage("amount must have at most two decimals")
            .Must((args, amount) => store.FindOrder(args.OrderId) is not { } order || amount <= order.Total)
            .WithMessage(x => $"a refund cannot exceed the order total: {x.Amount:0.00} is more than the {store.FindOrder(x.OrderId)?.Total:0.00} paid for {x.OrderId}");
        RuleFor(x => x.Currency)
            .Must((args, currency) => store.FindOrder(args.OrderId) is not { } order || currency == order.Currency)
            .WithMessage(x => $"currency must be the order's currency, {store.FindOrder(x.OrderId)?.Currency}");
        RuleFor(x => x.Reason).IsInEnum();
    }
}

internal sealed class ChargeRules : AbstractValidator<ChargeArgs>
{
    public ChargeRules(OrderStore store)
    {
        RuleFor(x => x.CustomerId).Cascade(CascadeMode.Stop)
            .Matches(SupportDeskFormats.CustomerIdPattern).WithMessage("customer_id must look like C-1029")
            .Must(id => store.FindCustomer(id) is not null).WithMessage(x => $"customer {x.CustomerId} does not exist");
        RuleFor(x => x.OrderId).Cascade(CascadeMode.Stop)
            .Matches(SupportDeskFormats.OrderIdPattern).WithMessage("order_id " + SupportDeskFormats.NotAnOrderId)
            .Must((args, id) => store.FindOrder(id)?.CustomerId == args.CustomerId)
            .WithMessage(x => $"order {x.OrderId} is not an order of customer {x.CustomerId}");
        RuleFor(x => x.CardNumber).Cascade(CascadeMode.Stop)
            .Matches(@"^\d{16}$").WithMessage("card_number must be 16 digits")
            .Must(SupportDeskFormats.PassesLuhn).WithMessage("card_number is not a valid card number (check digit)");
        RuleFor(x => x.Amount).Must(a => decimal.Round(a, 2) == a).WithMessage("amount must have at most two decimals");
    }
}

internal sealed class EscalateRules : AbstractValidator<EscalateArgs>
{
    public EscalateRules()
    {
        RuleFor(x => x.Reason).Must(r => r.Trim().Length >= 10).WithMessage("reason must say in a sentence what a person should look at");
        RuleFor(x => x.OrderId).Matches(SupportDeskFormats.OrderIdPattern).When(x => x.OrderId is not null)
            .WithMessage("order_id " + SupportDeskFormats.NotAnOrderId);
    }
}
