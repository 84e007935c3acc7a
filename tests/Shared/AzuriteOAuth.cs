using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Azure.Core;
using Azure.Core.Pipeline;
using Orchestrator.Durable.AzureStorage;
using Xunit;

namespace Orchestrator.Testing;

/// <summary>
/// What an identity-based connection needs against Azurite's <c>--oauth basic</c>: a self-signed certificate for its
/// HTTPS endpoints, a transport that trusts exactly that certificate, and a credential issuing tokens Azurite accepts.
/// </summary>
internal static class AzuriteOAuth
{
    /// <summary>A self-signed RSA certificate for 127.0.0.1 and localhost, valid for a day either side of now.</summary>
    public static X509Certificate2 CreateCertificate()
    {
        using var rsa = RSA.Create(2048);
        var request = new CertificateRequest("CN=azurite-test", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        san.AddDnsName("localhost");
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false));
        DateTimeOffset now = TimeProvider.System.GetUtcNow();
        return request.CreateSelfSigned(now.AddDays(-1), now.AddDays(1));
    }

    /// <summary>An HTTP transport that accepts the server certificate only when it is <paramref name="certificate"/>.</summary>
    public static HttpPipelineTransport TrustingTransport(X509Certificate2 certificate)
    {
        byte[] expected = certificate.RawData;
        var handler = new SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, presented, _, _) => presented is not null && presented.GetRawCertData().AsSpan().SequenceEqual(expected),
            },
        };
        return new HttpClientTransport(handler);
    }
}

/// <summary>
/// A credential that mints unsigned JWTs the way Microsoft Entra ID shapes them: audience = the requested scope without
/// <c>/.default</c>, an <c>sts.windows.net</c> issuer, iat/nbf a minute ago, exp in an hour. Azurite's <c>basic</c>
/// OAuth checks exactly those (not the signature). <see cref="AudienceOverride"/> mints a token for another audience.
/// </summary>
internal sealed class AzuriteTokenCredential : TokenCredential
{
    private const string Tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";

    /// <summary>When set, every token carries this audience instead of the requested one.</summary>
    public string? AudienceOverride { get; init; }

    /// <summary>Every scope requested, in order.</summary>
    public ConcurrentQueue<string> RequestedScopes { get; } = new();

    public override AccessToken GetToken(TokenRequestContext requestContext, CancellationToken cancellationToken)
    {
        foreach (string scope in requestContext.Scopes)
        {
            this.RequestedScopes.Enqueue(scope);
        }

        string audience = this.AudienceOverride ?? (requestContext.Scopes.FirstOrDefault() ?? string.Empty).Replace("/.default", string.Empty, StringComparison.Ordinal);
        DateTimeOffset now = TimeProvider.System.GetUtcNow();
        DateTimeOffset expires = now.AddHours(1);
        string header = Encode(new { alg = "RS256", typ = "JWT" });
        string payload = Encode(new
        {
            aud = audience,
            iss = $"https://sts.windows.net/{Tenant}/",
            iat = now.AddMinutes(-1).ToUnixTimeSeconds(),
            nbf = now.AddMinutes(-1).ToUnixTimeSeconds(),
            exp = expires.ToUnixTimeSeconds(),
            oid = "00000000-0000-0000-0000-000000000001",
            tid = Tenant,
        });
        return new AccessToken($"{header}.{payload}.{Base64Url("not-signed"u8)}", expires);
    }

    public override ValueTask<AccessToken> GetTokenAsync(TokenRequestContext requestContext, CancellationToken cancellationToken) =>
        ValueTask.FromResult(this.GetToken(requestContext, cancellationToken));

    private static string Encode(object value) => Base64Url(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(value)));

    private static string Base64Url(ReadOnlySpan<byte> bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}

/// <summary>A private Azurite serving HTTPS with a self-signed certificate and accepting OAuth bearer tokens (<c>--oauth basic</c>).</summary>
public sealed class AzuriteOAuthFixture : IAsyncLifetime
{
    private AzuriteInstance? instance;

    public X509Certificate2 Certificate { get; } = AzuriteOAuth.CreateCertificate();

    public HttpPipelineTransport Transport { get; private set; } = null!;

    public AzureStorageServiceUris ServiceUris { get; private set; } = null!;

    /// <summary>Shared-key access to the same Azurite, to look at what the identity-based clients did (or did not) write.</summary>
    public string ConnectionString => this.instance?.ConnectionString ?? string.Empty;

    public string Description => this.instance?.Description ?? string.Empty;

    public async Task InitializeAsync()
    {
        this.instance = await AzuriteInstance.StartHttpsOAuthAsync("azurite-oauth-", this.Certificate, CancellationToken.None);
        this.Transport = AzuriteOAuth.TrustingTransport(this.Certificate);
        (Uri blob, Uri queue, Uri table) = this.instance.ServiceUris!.Value;
        this.ServiceUris = new AzureStorageServiceUris(blob, queue, table);
    }

    public Task DisposeAsync()
    {
        this.instance?.Dispose();
        this.Certificate.Dispose();
        return Task.CompletedTask;
    }
}
