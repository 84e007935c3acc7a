using Orchestrator.Durable.Backend;

namespace Orchestrator.Durable.Tests;

/// <summary>
/// Continuation tokens are kept by callers across deploys: tokens written by version 1 of the format must keep
/// reading (fixtures below were written by it), and a token is bound to its backend kind and filter.
/// </summary>
public sealed class InstanceQueryContinuationTests
{
    // Version 1 fixtures: {"v":1,"b":"sqlite","f":"18639b65213330b0","k":"order-7"} for prefix "order-", and
    // {"v":1,"b":"azure-storage","f":"cc29f5470db726f0","k":"a%2Fb"} for Completed+Failed created from tick 638000000000000000.
    private const string SqliteV1 = "eyJ2IjoxLCJiIjoic3FsaXRlIiwiZiI6IjE4NjM5YjY1MjEzMzMwYjAiLCJrIjoib3JkZXItNyJ9";
    private const string AzureV1 = "eyJ2IjoxLCJiIjoiYXp1cmUtc3RvcmFnZSIsImYiOiJjYzI5ZjU0NzBkYjcyNmYwIiwiayI6ImElMkZiIn0";

    private static readonly DateTimeOffset FixtureFrom = new(638000000000000000, TimeSpan.Zero);

    [Fact]
    public void ReadLastKey_Version1Fixtures_ReadTheirKeys()
    {
        Assert.Equal("order-7", InstanceQueryContinuation.ReadLastKey("sqlite", new InstanceQuery { InstanceIdPrefix = "order-", ContinuationToken = SqliteV1 }));
        Assert.Equal("a%2Fb", InstanceQueryContinuation.ReadLastKey("azure-storage", new InstanceQuery
        {
            Statuses = [OrchestrationRuntimeStatus.Failed, OrchestrationRuntimeStatus.Completed, OrchestrationRuntimeStatus.Failed],
            CreatedFrom = FixtureFrom,
            PageSize = 7,
            FetchInputsAndOutputs = false,
            ContinuationToken = AzureV1,
        }));
    }

    [Fact]
    public void Create_SameInputs_WritesTheVersion1Fixture()
    {
        Assert.Equal(SqliteV1, InstanceQueryContinuation.Create("sqlite", new InstanceQuery { InstanceIdPrefix = "order-", PageSize = 3 }, "order-7"));
    }

    [Fact]
    public void ReadLastKey_NoToken_ReturnsNull()
    {
        Assert.Null(InstanceQueryContinuation.ReadLastKey("sqlite", new InstanceQuery()));
    }

    [Fact]
    public void ReadLastKey_KeyWithQuotesAndNonAscii_RoundTrips()
    {
        var query = new InstanceQuery { Statuses = [OrchestrationRuntimeStatus.Running] };
        const string key = "o'brien/\"x\"\\é—日本\U0001F600";

        string token = InstanceQueryContinuation.Create("sqlite", query, key);

        Assert.Equal(key, InstanceQueryContinuation.ReadLastKey("sqlite", query with { ContinuationToken = token }));
        Assert.DoesNotContain('+', token);
        Assert.DoesNotContain('/', token);
        Assert.DoesNotContain('=', token);
    }

    [Theory]
    [InlineData("another backend")]
    [InlineData("another status")]
    [InlineData("another prefix")]
    [InlineData("another created range")]
    public void ReadLastKey_OtherBackendOrFilter_ThrowsArgumentException(string change)
    {
        var query = new InstanceQuery { InstanceIdPrefix = "order-", ContinuationToken = SqliteV1 };
        string backend = "sqlite";
        switch (change)
        {
            case "another backend": backend = "azure-storage"; break;
            case "another status": query = query with { Statuses = [OrchestrationRuntimeStatus.Pending] }; break;
            case "another prefix": query = query with { InstanceIdPrefix = "order" }; break;
            default: query = query with { CreatedTo = FixtureFrom }; break;
        }

        ArgumentException ex = Assert.Throws<ArgumentException>(() => InstanceQueryContinuation.ReadLastKey(backend, query));

        Assert.Equal(nameof(InstanceQuery.ContinuationToken), ex.ParamName);
    }
}
