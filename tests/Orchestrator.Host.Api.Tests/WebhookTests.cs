using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;

namespace Orchestrator.Host.Api.Tests;

public sealed class StandardWebhookVerifierTests
{
    // The Standard Webhooks specification's published test vector (also in its reference libraries' tests).
    private const string VectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    private const string VectorId = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    private const long VectorTimestamp = 1614265330;
    private const string VectorBody = "{\"test\": 2432232314}";
    private const string VectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    private static StandardWebhookVerifier At(long unixSeconds, params string[] secrets) =>
        new(secrets.Length == 0 ? [VectorSecret] : secrets, new FakeTimeProvider(DateTimeOffset.FromUnixTimeSeconds(unixSeconds)));

    private static byte[] Body => Encoding.UTF8.GetBytes(VectorBody);

    [Fact]
    public void Sign_SpecVector_ReproducesThePublishedSignature() =>
        Assert.Equal(VectorSignature, StandardWebhookVerifier.Sign(VectorSecret, VectorId, VectorTimestamp, Body));

    [Fact]
    public void Verify_SpecVector_Valid() =>
        Assert.Equal(WebhookVerification.Valid, At(VectorTimestamp).Verify(VectorId, "1614265330", VectorSignature, Body));

    [Fact]
    public void Verify_SeveralSignaturesOneValid_Valid() =>
        Assert.Equal(WebhookVerification.Valid, At(VectorTimestamp).Verify(VectorId, "1614265330", "v1,bm9wZQ== v1a,Zm9v " + VectorSignature, Body));

    [Fact]
    public void Verify_RotatedSecrets_OldSecretStillAccepted() =>
        Assert.Equal(WebhookVerification.Valid, At(VectorTimestamp, "whsec_bmV3IHNlY3JldCBrZXkgYWZ0ZXIgcm90YXRpb24=", VectorSecret).Verify(VectorId, "1614265330", VectorSignature, Body));

    [Theory]
    [InlineData("{\"test\": 2432232315}")]
    [InlineData("{\"test\":2432232314}")]
    public void Verify_ChangedBody_NoMatchingSignature(string body) =>
        Assert.Equal(WebhookVerification.NoMatchingSignature, At(VectorTimestamp).Verify(VectorId, "1614265330", VectorSignature, Encoding.UTF8.GetBytes(body)));

    [Fact]
    public void Verify_ChangedIdOrWrongSecretOrVersion_NoMatchingSignature()
    {
        Assert.Equal(WebhookVerification.NoMatchingSignature, At(VectorTimestamp).Verify("msg_other", "1614265330", VectorSignature, Body));
        Assert.Equal(WebhookVerification.NoMatchingSignature, At(VectorTimestamp, ApiHarness.OldSecret).Verify(VectorId, "1614265330", VectorSignature, Body));
        Assert.Equal(WebhookVerification.NoMatchingSignature, At(VectorTimestamp).Verify(VectorId, "1614265330", VectorSignature.Replace("v1,", "v2,", StringComparison.Ordinal), Body));
        Assert.Equal(WebhookVerification.NoMatchingSignature, At(VectorTimestamp).Verify(VectorId, "1614265330", "v1,not-base64!!", Body));
    }

    [Theory]
    [InlineData(-300, true)]
    [InlineData(300, true)]
    [InlineData(-301, false)]
    [InlineData(301, false)]
    public void Verify_FiveMinuteToleranceBothWays(int skewSeconds, bool valid)
    {
        WebhookVerification expected = valid ? WebhookVerification.Valid : WebhookVerification.TimestampOutOfTolerance;
        // The signature is made for the timestamp sent; only the receiver's clock moves.
        Assert.Equal(expected, At(VectorTimestamp + skewSeconds).Verify(VectorId, "1614265330", VectorSignature, Body));
    }

    [Fact]
    public void Verify_MissingOrMalformedHeaders_Refused()
    {
        StandardWebhookVerifier v = At(VectorTimestamp);
        Assert.Equal(WebhookVerification.MissingHeaders, v.Verify(null, "1614265330", VectorSignature, Body));
        Assert.Equal(WebhookVerification.MissingHeaders, v.Verify(VectorId, null, VectorSignature, Body));
        Assert.Equal(WebhookVerification.MissingHeaders, v.Verify(VectorId, "1614265330", "", Body));
        Assert.Equal(WebhookVerification.MalformedTimestamp, v.Verify(VectorId, "1614265330.5", VectorSignature, Body));
    }

    [Theory]
    [InlineData("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    [InlineData("whsec_")]
    [InlineData("whsec_not base64!")]
    public void TryDecodeSecret_NotWhsecBase64_False(string secret) => Assert.False(StandardWebhookVerifier.TryDecodeSecret(secret, out _));
}

public sealed class ConfirmationWebhookTests
{
    private static string Decision(string hash, string decision = "approve") =>
        JsonSerializer.Serialize(new { decision, argumentsHash = hash, decidedBy = "webhook" });

    [Fact(Timeout = 120_000)]
    public async Task Webhook_UnsignedForgedStaleMismatched_RefusedAndTheTurnStillWaits()
    {
        await using ApiHarness api = await ApiHarness.StartSqliteAsync();
        await api.StartAsync("conv-wh", "refund A8472");
        string hash = (string)(await api.PendingEventuallyAsync("conv-wh"))["argumentsHash"]!;
        string body = Decision(hash);
        long now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

        var unsigned = await api.SendWebhookAsync("conv-wh", "call_refund", body, "msg_1", sign: false);
        var forged = await api.SendWebhookAsync("conv-wh", "call_refund", body, "msg_2", secrets: [ApiHarness.OldSecret]);
        var stale = await api.SendWebhookAsync("conv-wh", "call_refund", body, "msg_3", timestamp: now - 600);
        var future = await api.SendWebhookAsync("conv-wh", "call_refund", body, "msg_4", timestamp: now + 600);
        var mismatched = await api.SendWebhookAsync("conv-wh", "call_refund", Decision(new string('a', 64)), "msg_5");
        var mismatchedReplay = await api.SendWebhookAsync("conv-wh", "call_refund", Decision(new string('a', 64)), "msg_5");
        var notPending = await api.SendWebhookAsync("conv-wh", "call_lookup", body, "msg_6");

        // A body changed after signing (the signature is over id.timestamp.body).
        using var tampered = new HttpRequestMessage(HttpMethod.Post, "/api/conversations/conv-wh/confirmations/call_refund") { Content = ApiHarness.Json(Decision(hash, "reject")) };
        ApiHarness.Signed(tampered, "msg_7", now, body, ApiHarness.Secret);
        using HttpResponseMessage tamperedResponse = await api.Http.SendAsync(tampered);

        Assert.Equal(401, unsigned.Status);
        Assert.Equal(401, forged.Status);
        Assert.Equal(401, stale.Status);
        Assert.Equal(401, future.Status);
        Assert.Equal(HttpStatusCode.Unauthorized, tamperedResponse.StatusCode);
        Assert.Equal(409, mismatched.Status);
        Assert.Equal(409, mismatchedReplay.Status);
        Assert.Equal(mismatched.Body, mismatchedReplay.Body);
        Assert.Equal(404, notPending.Status);
        JsonNode status = await api.StatusAsync("conv-wh");
        Assert.Equal("awaiting_confirmation", (string?)status["currentTurn"]!["phase"]);
        Assert.Equal("call_refund", (string?)status["currentTurn"]!["pendingConfirmations"]![0]!["toolCallId"]);
        Assert.Empty(status["currentTurn"]!["decided"]!.AsArray());
        Assert.Empty(status["currentTurn"]!["refusals"]!.AsArray());
        Assert.Empty(api.Agent.Refunds);
    }

    [Fact(Timeout = 120_000)]
    public async Task Webhook_SignedApproval_RunsOnceAndAReplayedDeliveryReturnsTheFirstResult()
    {
        await using ApiHarness api = await ApiHarness.StartSqliteAsync();
        await api.StartAsync("conv-ok", "refund A8472");
        string hash = (string)(await api.PendingEventuallyAsync("conv-ok"))["argumentsHash"]!;
        string body = Decision(hash);

        // Signed with the new and the old secret, as during a rotation.
        var first = await api.SendWebhookAsync("conv-ok", "call_refund", body, "msg_ok", secrets: [ApiHarness.OldSecret, ApiHarness.Secret]);
        Assert.Equal(202, first.Status);
        await api.StatusEventuallyAsync("conv-ok", s => (int?)s["turns"] == 1 && s["currentTurn"] is null, "turn completed after the webhook");

        // The sender retries the same delivery (same id, fresh timestamp and signature): the first answer, no effect.
        var replay = await api.SendWebhookAsync("conv-ok", "call_refund", body, "msg_ok");
        var reused = await api.SendWebhookAsync("conv-ok", "call_refund", Decision(hash, "reject"), "msg_ok");

        Assert.Equal(202, replay.Status);
        Assert.Equal(first.Body, replay.Body);
        Assert.True(replay.Response.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal(422, reused.Status);
        Assert.Equal(1, Assert.Single(api.Agent.Refunds).Value);
        JsonNode transcript = await api.GetJsonAsync("/api/conversations/conv-ok/transcript", management: true);
        Assert.Contains(transcript["messages"]!.AsArray(), m => (string?)m!["toolCallId"] == "call_refund" && ((string?)m["content"])!.Contains("refunded", StringComparison.Ordinal));
    }

    [Fact(Timeout = 120_000)]
    public async Task Webhook_NoSecretConfigured_EveryDeliveryRefused()
    {
        await using ApiHarness api = await ApiHarness.StartSqliteAsync(api: new ApiSettings { ManagementKey = ApiHarness.ManagementKey });
        await api.StartAsync("conv-nosecret", "refund A8472");
        string hash = (string)(await api.PendingEventuallyAsync("conv-nosecret"))["argumentsHash"]!;

        var response = await api.SendWebhookAsync("conv-nosecret", "call_refund", Decision(hash), "msg_x");

        Assert.Equal(401, response.Status);
        Assert.Equal("awaiting_confirmation", (string?)(await api.StatusAsync("conv-nosecret"))["currentTurn"]!["phase"]);
    }
}
