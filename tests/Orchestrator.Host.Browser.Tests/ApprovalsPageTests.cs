using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace Orchestrator.Host.Browser.Tests;

/// <summary>
/// The approvals page end to end: the real host on Kestrel (SQLite), a turn proposed through the OpenAI SDK by the
/// scripted model endpoint, and headless Chromium clicking the page.
/// </summary>
[Collection(ChromiumCollection.Name)]
public sealed class ApprovalsPageTests(ChromiumFixture chromium)
{
    private const string Summary = "Refund $47.00 for order A8472: " + PageHarness.HostileReason;

    [Fact(Timeout = 180_000)]
    public async Task PendingRefund_ApprovedWithOneClick_TurnCompletesWithExactlyOneRefund()
    {
        await using PageHarness host = await PageHarness.StartAsync();
        await host.StartConversationAsync("conv-approve", "refund order A8472 please");
        JsonNode pending = await host.PendingConfirmationAsync("conv-approve");
        string arguments = (string)pending["arguments"]!;

        (IPage page, ConcurrentQueue<IRequest> requests) = await host.NewPageAsync(chromium.Browser);
        await page.GotoAsync(host.PageUrlWithKey);
        ILocator card = Card(page);
        await Expect(card).ToBeVisibleAsync();

        // The exact canonical arguments, the rendered summary, the hash, the plan and what depends on the call.
        Assert.Equal(arguments, await card.Locator("pre.arguments").TextContentAsync());
        Assert.Equal(Summary, await card.Locator(".summary").TextContentAsync());
        Assert.Equal((string)pending["argumentsHash"]!, await card.Locator("code.hash").TextContentAsync());
        Assert.Equal("conv-approve", await card.Locator("code.conversation-id").TextContentAsync());
        await Expect(card.Locator(".dependents")).ToContainTextAsync("notify_customer (call_notify)");
        await Expect(card.Locator(".waits-for")).ToContainTextAsync("call_lookup");
        await Expect(card.Locator(".plan li")).ToHaveCountAsync(3);
        await Expect(card.Locator(".plan li.this")).ToContainTextAsync("process_refund (call_refund)");

        // The key came in the fragment: it is dropped from the address bar and never sent in a URL.
        Assert.DoesNotContain(PageHarness.ManagementKey, page.Url, StringComparison.Ordinal);

        await Screenshot(page, "pending-refund");
        await card.Locator("button[data-action=approve]").ClickAsync();

        await Expect(card).ToHaveCountAsync(0);
        await Expect(page.Locator("#empty")).ToBeVisibleAsync();
        JsonNode status = await host.TurnCompletedAsync("conv-approve");
        Assert.Equal("Answered", (string?)status["lastOutcome"]);
        Execution refund = Assert.Single(host.Refunds);
        Assert.Equal(arguments, refund.Arguments);
        Assert.NotNull(refund.IdempotencyKey);
        Assert.Single(host.Executions, e => e.Tool == "notify_customer");
        Assert.Empty(await host.ConfirmationsAsync());
        Assert.DoesNotContain(requests, r => r.Url.Contains(PageHarness.ManagementKey, StringComparison.Ordinal));
        IRequest decision = Assert.Single(requests, r => r.Method == "POST");
        Assert.Equal(host.BaseUrl + "/api/approvals/conv-approve%3Aturn%3A1/call_refund", decision.Url);
        Assert.Equal(PageHarness.ManagementKey, decision.Headers["x-management-key"]);
    }

    [Fact(Timeout = 180_000)]
    public async Task PendingRefund_RejectedWithOneClick_NothingExecutesAndTurnCompletes()
    {
        await using PageHarness host = await PageHarness.StartAsync();
        await host.StartConversationAsync("conv-reject", "refund order A8472 please");
        await host.PendingConfirmationAsync("conv-reject");

        (IPage page, _) = await host.NewPageAsync(chromium.Browser);
        await page.GotoAsync(host.PageUrlWithKey);
        ILocator card = Card(page);
        await Expect(card).ToBeVisibleAsync();
        await card.Locator("button[data-action=reject]").ClickAsync();

        await Expect(card).ToHaveCountAsync(0);
        JsonNode status = await host.TurnCompletedAsync("conv-reject");
        Assert.Equal("Answered", (string?)status["lastOutcome"]);
        Assert.Empty(host.Refunds);
        Assert.DoesNotContain(host.Executions, e => e.Tool == "notify_customer");
        Assert.Single(host.Executions, e => e.Tool == "lookup_order");
    }

    [Fact(Timeout = 180_000)]
    public async Task EditWithInvalidArguments_ShowsTheValidationErrorAndChangesNothing_ThenValidEditRunsOnce()
    {
        await using PageHarness host = await PageHarness.StartAsync();
        await host.StartConversationAsync("conv-edit", "refund order A8472 please");
        JsonNode pending = await host.PendingConfirmationAsync("conv-edit");

        (IPage page, ConcurrentQueue<IRequest> requests) = await host.NewPageAsync(chromium.Browser);
        await page.GotoAsync(host.PageUrlWithKey);
        ILocator card = Card(page);
        await Expect(card).ToBeVisibleAsync();
        await card.Locator("button[data-action=edit]").ClickAsync();
        ILocator editor = card.Locator("textarea.edited-arguments");
        await Expect(editor).ToBeVisibleAsync();
        // The editor starts from the pending arguments, the hostile reason as plain text.
        Assert.Contains(PageHarness.HostileReason, await editor.InputValueAsync(), StringComparison.Ordinal);

        // Not JSON: the page says so and sends nothing.
        await editor.FillAsync("{\"order_id\": \"A8472\", ");
        await card.Locator("button[data-action=approve-edited]").ClickAsync();
        await Expect(card.Locator(".outcome")).ToContainTextAsync("not valid JSON");
        Assert.DoesNotContain(requests, r => r.Method == "POST");

        // Valid JSON, invalid arguments (an account number where the order id belongs): the server's errors are shown.
        await editor.FillAsync("{\"order_id\":\"12345678\",\"amount\":40,\"currency\":\"USD\",\"reason\":\"partial\"}");
        await card.Locator("button[data-action=approve-edited]").ClickAsync();
        await Expect(card.Locator(".outcome")).ToContainTextAsync("Edited arguments invalid (HTTP 422)");
        await Expect(card.Locator("ul.errors li")).ToContainTextAsync("order_id");
        await Screenshot(page, "invalid-edit");
        Assert.Single(requests, r => r.Method == "POST");

        // Nothing changed: still pending with the same hash, nothing decided, nothing executed, the card still there.
        JsonNode still = Assert.Single(await host.ConfirmationsAsync(), i => (string?)i!["conversationId"] == "conv-edit")!;
        Assert.Equal((string)pending["argumentsHash"]!, (string)still["argumentsHash"]!);
        JsonNode status = await host.StatusAsync("conv-edit");
        Assert.Equal("awaiting_confirmation", (string?)status["currentTurn"]!["phase"]);
        Assert.Empty(status["currentTurn"]!["decided"]!.AsArray());
        Assert.Empty(host.Refunds);
        await Expect(card).ToBeVisibleAsync();

        // A valid edit approves with the edited arguments, re-validated by the server, and runs once.
        await editor.FillAsync("{\"order_id\":\"A8472\",\"amount\":40,\"currency\":\"USD\",\"reason\":\"partial refund\"}");
        await card.Locator("button[data-action=approve-edited]").ClickAsync();
        await Expect(card).ToHaveCountAsync(0);
        await host.TurnCompletedAsync("conv-edit");
        Execution refund = Assert.Single(host.Refunds);
        JsonNode executed = JsonNode.Parse(refund.Arguments)!;
        Assert.Equal(40m, (decimal)executed["amount"]!);
        Assert.Equal("partial refund", (string?)executed["reason"]);
    }

    [Fact(Timeout = 180_000)]
    public async Task OpenPage_RefreshesAsConfirmationsArriveAndAreDecidedElsewhere()
    {
        await using PageHarness host = await PageHarness.StartAsync();
        (IPage page, _) = await host.NewPageAsync(chromium.Browser);
        await page.GotoAsync(host.PageUrlWithKey);
        await Expect(page.Locator("#empty")).ToBeVisibleAsync();

        // A turn starts after the page was opened: its confirmation shows up without a reload.
        await host.StartConversationAsync("conv-live", "refund order A8472 please");
        JsonNode pending = await host.PendingConfirmationAsync("conv-live");
        ILocator card = Card(page);
        await Expect(card).ToBeVisibleAsync();
        await Expect(page.Locator("#empty")).ToBeHiddenAsync();

        // Someone else decides (here through the API, as a webhook or another reviewer would): the card goes away.
        using var content = new StringContent(
            $"{{\"decision\":\"reject\",\"argumentsHash\":\"{(string)pending["argumentsHash"]!}\",\"decidedBy\":\"bob\"}}",
            System.Text.Encoding.UTF8,
            "application/json");
        using HttpResponseMessage decided = await host.Http.PostAsync((string)pending["decidePostUri"]!, content);
        Assert.Equal(System.Net.HttpStatusCode.Accepted, decided.StatusCode);
        await Expect(card).ToHaveCountAsync(0);
        await Expect(page.Locator("#empty")).ToBeVisibleAsync();
        await host.TurnCompletedAsync("conv-live");
        Assert.Empty(host.Refunds);
    }

    [Fact(Timeout = 180_000)]
    public async Task HostileArgumentValue_RendersAsText_NoElementAndNoScript()
    {
        await using PageHarness host = await PageHarness.StartAsync();
        await host.StartConversationAsync("conv-xss", "refund order A8472 please");
        await host.PendingConfirmationAsync("conv-xss");

        (IPage page, _) = await host.NewPageAsync(chromium.Browser);
        await page.GotoAsync(host.PageUrlWithKey);
        ILocator card = Card(page);
        await Expect(card).ToBeVisibleAsync();

        await Expect(card.Locator(".summary")).ToHaveTextAsync(Summary);
        Assert.Contains(PageHarness.HostileReason, await card.Locator("pre.arguments").TextContentAsync(), StringComparison.Ordinal);
        Assert.Equal(0, await page.Locator("img").CountAsync());
        Assert.True(await page.EvaluateAsync<bool>("() => window.__xss === undefined"), "the model's onerror handler ran");
    }

    [Fact(Timeout = 180_000)]
    public async Task SensitiveArgument_ShownRedacted_NeverReachesThePage_EditDisabled_ApproveRunsWithRealValue()
    {
        await using PageHarness host = await PageHarness.StartAsync();
        await host.StartConversationAsync("conv-card", "card update please");
        await host.PendingConfirmationAsync("conv-card");

        (IPage page, _) = await host.NewPageAsync(chromium.Browser);
        var responses = new ConcurrentQueue<IResponse>();
        page.Response += (_, response) =>
        {
            if (response.Url.Contains("/api/", StringComparison.Ordinal))
            {
                responses.Enqueue(response);
            }
        };
        await page.GotoAsync(host.PageUrlWithKey);
        ILocator card = page.Locator("article.card[data-tool-call-id='call_card']");
        await Expect(card).ToBeVisibleAsync();
        await Expect(card.Locator("pre.arguments")).ToContainTextAsync("[REDACTED");
        await Expect(card.Locator("button[data-action=edit]")).ToBeDisabledAsync();
        Assert.DoesNotContain(PageHarness.CardNumber, await page.ContentAsync(), StringComparison.Ordinal);
        // What the browser received from the API (the list and the plan), not only what it shows.
        Assert.NotEmpty(responses);
        foreach (IResponse response in responses)
        {
            Assert.DoesNotContain(PageHarness.CardNumber, await response.TextAsync(), StringComparison.Ordinal);
        }

        await card.Locator("button[data-action=approve]").ClickAsync();
        await Expect(card).ToHaveCountAsync(0);
        await host.TurnCompletedAsync("conv-card");
        Execution update = Assert.Single(host.Executions, e => e.Tool == "update_card");
        Assert.Contains(PageHarness.CardNumber, update.Arguments, StringComparison.Ordinal);
    }

    [Fact(Timeout = 180_000)]
    public async Task KeyForm_WrongKeyRefused_RightKeyKeptForTheTabOnly_NameRecordedWithDecision()
    {
        await using PageHarness host = await PageHarness.StartAsync();
        await host.StartConversationAsync("conv-key", "refund order A8472 please");
        await host.PendingConfirmationAsync("conv-key");

        (IPage page, ConcurrentQueue<IRequest> requests) = await host.NewPageAsync(chromium.Browser);
        await page.GotoAsync(host.BaseUrl + "/approvals");
        await Expect(page.Locator("#key-panel")).ToBeVisibleAsync();
        await Expect(Card(page)).ToHaveCountAsync(0);

        await page.Locator("#key-input").FillAsync("not-the-management-key");
        await page.Locator("#key-submit").ClickAsync();
        await Expect(page.Locator("#key-error")).ToHaveTextAsync("That key was refused.");
        await Expect(Card(page)).ToHaveCountAsync(0);

        await page.Locator("#key-input").FillAsync(PageHarness.ManagementKey);
        await page.Locator("#decided-by-input").FillAsync("alice");
        await page.Locator("#key-submit").ClickAsync();
        await Expect(Card(page)).ToBeVisibleAsync();
        await Expect(page.Locator("#decided-by")).ToHaveTextAsync("alice");
        Assert.Equal(PageHarness.ManagementKey, await page.EvaluateAsync<string>("() => sessionStorage.getItem('orchestrator.approvals.key')"));

        // A reload in the same tab keeps the key; it never travelled in a URL.
        await page.ReloadAsync();
        await Expect(Card(page)).ToBeVisibleAsync();
        await Expect(page.Locator("#key-panel")).ToBeHiddenAsync();

        // The name entered with the key is recorded with the decision.
        await Card(page).Locator("button[data-action=approve]").ClickAsync();
        await host.TurnCompletedAsync("conv-key");
        string history = await host.Http.GetStringAsync("/api/conversations/conv-key/history");
        Assert.Contains("alice", history, StringComparison.Ordinal);
        Assert.Single(host.Refunds);
        Assert.DoesNotContain(requests, r => r.Url.Contains(PageHarness.ManagementKey, StringComparison.Ordinal));
    }

    [Fact(Timeout = 60_000)]
    public async Task PageFiles_ServedWithStrictContentSecurityPolicy()
    {
        await using PageHarness host = await PageHarness.StartAsync();
        foreach (string path in new[] { "/approvals", "/approvals/approvals.js", "/approvals/approvals.css" })
        {
            using HttpResponseMessage response = await host.Http.GetAsync(path);
            response.EnsureSuccessStatusCode();
            string csp = string.Join(' ', response.Headers.GetValues("Content-Security-Policy"));
            Assert.Contains("script-src 'self'", csp, StringComparison.Ordinal);
            Assert.DoesNotContain("unsafe-inline", csp, StringComparison.Ordinal);
            Assert.Equal("nosniff", string.Join(' ', response.Headers.GetValues("X-Content-Type-Options")));
        }
    }

    /// <summary>Saves a screenshot when ORCHESTRATOR_SCREENSHOTS names a folder (to look at the page; not an assertion).</summary>
    private static async Task Screenshot(IPage page, string name)
    {
        if (Environment.GetEnvironmentVariable("ORCHESTRATOR_SCREENSHOTS") is { Length: > 0 } folder)
        {
            await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(folder, name + ".png"), FullPage = true });
        }
    }

    private static ILocator Card(IPage page) => page.Locator("article.card[data-tool-call-id='call_refund']");
}
