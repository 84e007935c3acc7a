using System.Collections.Frozen;

namespace SupportDesk;

/// <summary>An order as the support desk sees it.</summary>
/// <param name="OrderId">The order id, such as A8472.</param>
/// <param name="CustomerId">The customer who placed it.</param>
/// <param name="Item">What was ordered.</param>
/// <param name="Total">What the customer paid.</param>
/// <param name="Currency">ISO 4217 code of <paramref name="Total"/>.</param>
/// <param name="Status">placed, shipped or delivered.</param>
public sealed record Order(string OrderId, string CustomerId, string Item, decimal Total, string Currency, string Status);

/// <summary>A customer as the support desk sees it.</summary>
/// <param name="CustomerId">The customer id, such as C-1029.</param>
/// <param name="Name">The customer's name.</param>
/// <param name="Email">Where the desk writes to.</param>
/// <param name="AccountNumber">The account number customers quote (eight digits); sensitive.</param>
public sealed record Customer(string CustomerId, string Name, string Email, string AccountNumber);

/// <summary>
/// The orders and customers the read tools serve: a small immutable seeded store. Immutable on purpose: the
/// business rules read it during validation, which runs in orchestrator code and is replayed, so what it answers
/// must not change between a run and its replay.
/// </summary>
public sealed class OrderStore
{
    private readonly FrozenDictionary<string, Order> _orders;
    private readonly FrozenDictionary<string, Customer> _customers;

    /// <summary>Creates a store holding these orders and customers.</summary>
    public OrderStore(IEnumerable<Order> orders, IEnumerable<Customer> customers)
    {
        ArgumentNullException.ThrowIfNull(orders);
        ArgumentNullException.ThrowIfNull(customers);
        _orders = orders.ToFrozenDictionary(o => o.OrderId, StringComparer.Ordinal);
        _customers = customers.ToFrozenDictionary(c => c.CustomerId, StringComparer.Ordinal);
    }

    /// <summary>
    /// The seeded data of the refund incident: customer C-1029 (account 99812345) whose order A8472 (a $47.00
    /// teapot) arrived broken, and a few other orders and customers.
    /// </summary>
    public static OrderStore Seeded { get; } = new(
        [
            new Order("A8472", "C-1029", "Ceramic teapot, 1.2 l", 47.00m, "USD", "delivered"),
            new Order("A8473", "C-1029", "Tea cups, set of 4", 129.99m, "USD", "shipped"),
            new Order("A9120", "C-2048", "Kettle descaler", 15.50m, "USD", "delivered"),
            new Order("A9317", "C-3311", "Espresso machine", 649.00m, "USD", "placed"),
        ],
        [
            new Customer("C-1029", "Dana Whitfield", "dana.whitfield@example.com", "99812345"),
            new Customer("C-2048", "Ravi Menon", "ravi.menon@example.com", "40077211"),
            new Customer("C-3311", "Mei Tanaka", "mei.tanaka@example.com", "55120934"),
        ]);

    /// <summary>The order with this id, or null.</summary>
    public Order? FindOrder(string? orderId) => orderId is null ? null : _orders.GetValueOrDefault(orderId);

    /// <summary>The customer with this id, or null.</summary>
    public Customer? FindCustomer(string? customerId) => customerId is null ? null : _customers.GetValueOrDefault(customerId);

    /// <summary>The customer with this account number, or null.</summary>
    public Customer? FindCustomerByAccount(string? accountNumber) =>
        accountNumber is null ? null : _customers.Values.FirstOrDefault(c => string.Equals(c.AccountNumber, accountNumber, StringComparison.Ordinal));
}
