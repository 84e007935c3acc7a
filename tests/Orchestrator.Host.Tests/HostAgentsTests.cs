using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;
using SupportDesk;

namespace Orchestrator.Host.Tests;

public sealed class HostAgentsTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("host-agents-").FullName;

    [Fact]
    public void Load_ModelAndPaymentsInValues_ReadBothSpellings()
    {
        this.Write("local.settings.json", """
            { "Values": { "Model__Endpoint": "http://127.0.0.1:5099/v1", "Model__ApiKey": "", "Model:Name": "qwen2.5", "Payments:BaseUrl": "http://127.0.0.1:7000/" } }
            """);

        HostSettings s = HostSettings.Load(this.dir);

        Assert.Equal(new Uri("http://127.0.0.1:5099/v1"), s.ModelEndpoint);
        Assert.Null(s.ModelApiKey); // empty counts as absent
        Assert.Equal("qwen2.5", s.ModelName);
        Assert.Equal(new Uri("http://127.0.0.1:7000/"), s.PaymentsBaseUrl);
    }

    [Fact]
    public void Load_NoAgentSettings_ScriptedModelAndInProcessPayments()
    {
        HostSettings s = HostSettings.Load(this.dir);

        Assert.Null(s.ModelEndpoint);
        Assert.Null(s.PaymentsBaseUrl);
        Assert.Equal(Path.GetFullPath(Path.Combine(".data", "orchestrator-payments.db")), HostAgents.PaymentsLedgerPath(s));
    }

    [Theory]
    [InlineData("""{ "Values": { "Model__Endpoint": "not a url", "Model__Name": "m" } }""", "Model:Endpoint")]
    [InlineData("""{ "Values": { "Model__Endpoint": "ftp://models.example.com/v1", "Model__Name": "m" } }""", "Model:Endpoint")]
    [InlineData("""{ "Values": { "Model__Endpoint": "https://api.openai.com/v1" } }""", "Model:Name")]
    [InlineData("""{ "Values": { "Payments__BaseUrl": "payments" } }""", "Payments:BaseUrl")]
    public void Load_InvalidAgentSetting_FailsNamingTheSetting(string localSettings, string setting)
    {
        this.Write("local.settings.json", localSettings);

        var ex = Assert.Throws<InvalidOperationException>(() => HostSettings.Load(this.dir));

        Assert.Contains(setting, ex.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task CreateDefault_NothingConfigured_SupportDeskOnScriptedModelWithLedgerBesideTheDatabase()
    {
        var settings = HostSettings.Load(this.dir) with { DataSource = Path.Combine(this.dir, "state", "o.db") };

        await using (HostAgentRuntime runtime = await HostAgents.CreateDefaultAsync(settings, NullLoggerFactory.Instance, CancellationToken.None))
        {
            Assert.Equal(SupportDeskAgent.Name, runtime.Agent.Name);
            Assert.Equal(SupportDeskAgent.SystemPrompt, runtime.Agent.SystemPrompt);
            Assert.Contains("scripted", runtime.ModelDescription, StringComparison.Ordinal);
            Assert.Empty(await PaymentsLedger.ReadAsync(runtime.Payments!, CancellationToken.None));
        }

        Assert.True(File.Exists(Path.Combine(this.dir, "state", "o-payments.db")));
    }

    [Fact(Timeout = 60_000)]
    public async Task CreateDefault_PaymentsBaseUrlConfigured_ToolsCallThatService()
    {
        await using var payments = await LocalPaymentsService.StartAsync(Path.Combine(this.dir, "external-ledger.db"), CancellationToken.None);
        var settings = HostSettings.Load(this.dir) with { PaymentsBaseUrl = payments.BaseUrl, DataSource = Path.Combine(this.dir, "o.db") };

        await using HostAgentRuntime runtime = await HostAgents.CreateDefaultAsync(settings, NullLoggerFactory.Instance, CancellationToken.None);
        var handler = runtime.Agent.Handlers.Find(SupportDeskTools.ProcessRefund)!;
        await handler(new Orchestrator.Agents.ToolInvocation("conv", "call_1", SupportDeskTools.ProcessRefund, """{"amount":5,"order_id":"A8472","reason":"damaged"}""", "key-1"), CancellationToken.None);

        Assert.Contains("Payments:BaseUrl", runtime.PaymentsDescription, StringComparison.Ordinal);
        Assert.Equal("key-1", Assert.Single(await PaymentsLedger.ReadAsync(payments.Client, CancellationToken.None)).IdempotencyKey);
        Assert.False(File.Exists(Path.Combine(this.dir, "o-payments.db")));
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(this.dir, recursive: true);
    }

    private void Write(string name, string content) => File.WriteAllText(Path.Combine(this.dir, name), content);
}
