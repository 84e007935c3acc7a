using Microsoft.Playwright;

namespace Orchestrator.Host.Browser.Tests;

/// <summary>
/// One headless Chromium for the test run: Debian's <c>chromium</c> driven by Playwright through its executable path
/// (no Playwright browser download). A missing browser fails the tests with a message saying how to install it; it never
/// skips them.
/// </summary>
public sealed class ChromiumFixture : IAsyncLifetime
{
    /// <summary>Overrides the browser's path (default <c>/usr/bin/chromium</c>).</summary>
    public const string PathVariable = "ORCHESTRATOR_CHROMIUM";

    private IPlaywright? playwright;
    private IBrowser? browser;

    public static string ExecutablePath => Environment.GetEnvironmentVariable(PathVariable) is { Length: > 0 } path ? path : "/usr/bin/chromium";

    public IBrowser Browser => this.browser ?? throw new InvalidOperationException("Chromium did not start.");

    public async Task InitializeAsync()
    {
        if (!File.Exists(ExecutablePath))
        {
            throw new InvalidOperationException(
                $"Chromium was not found at {ExecutablePath}. The browser tests need Debian's chromium: " +
                $"`apt-get update && apt-get install -y chromium` (.ci/run does this), or set {PathVariable} to a Chromium executable.");
        }

        // Expectations poll the page; the page itself polls every 2 s, and this machine is shared, so allow a margin.
        Assertions.SetDefaultExpectTimeout(30_000);
        this.playwright = await Playwright.CreateAsync();
        this.browser = await this.playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ExecutablePath,
            Headless = true,
            Args = ["--no-sandbox"],
        });
    }

    public async Task DisposeAsync()
    {
        if (this.browser is not null)
        {
            await this.browser.DisposeAsync();
        }

        this.playwright?.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class ChromiumCollection : ICollectionFixture<ChromiumFixture>
{
    public const string Name = "chromium";
}
