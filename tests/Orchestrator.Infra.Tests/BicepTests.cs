using System.Diagnostics;
using System.Reflection;
using System.Text.Json;

namespace Orchestrator.Infra.Tests;

/// <summary>
/// infra/ compiles with the bicep CLI from the Azure.Bicep.CommandLine.linux-x64 package (restored like any other
/// package, so this runs offline in CI), without warnings, into the resources the production deployment needs.
/// </summary>
public sealed class BicepTests
{
    private static readonly string Root = Metadata("RepositoryRoot");

    [Fact(Timeout = 180_000)]
    public async Task BicepBuild_Main_CompilesWithoutWarningsToTheProductionResources()
    {
        var (code, stdout, stderr) = await RunBicepAsync("build", Path.Combine(Root, "infra", "main.bicep"), "--stdout");

        Assert.True(code == 0, $"bicep build exited {code}: {stderr}");
        Assert.DoesNotContain("Warning", stderr, StringComparison.OrdinalIgnoreCase);
        using JsonDocument arm = JsonDocument.Parse(stdout);
        JsonElement[] resources = Resources(arm.RootElement);
        string[] types = [.. resources.Select(r => r.GetProperty("type").GetString()!).Distinct().Order()];
        Assert.Equal(
            [
                "Microsoft.App/containerApps",
                "Microsoft.App/managedEnvironments",
                "Microsoft.Authorization/roleAssignments",
                "Microsoft.KeyVault/vaults",
                "Microsoft.KeyVault/vaults/secrets",
                "Microsoft.ManagedIdentity/userAssignedIdentities",
                "Microsoft.OperationalInsights/workspaces",
                "Microsoft.Storage/storageAccounts",
                "Microsoft.Storage/storageAccounts/blobServices",
                "Microsoft.Storage/storageAccounts/queueServices",
                "Microsoft.Storage/storageAccounts/tableServices",
            ],
            types);

        JsonElement storage = resources.Single(r => r.GetProperty("type").GetString() == "Microsoft.Storage/storageAccounts");
        Assert.False(storage.GetProperty("properties").GetProperty("allowSharedKeyAccess").GetBoolean());

        JsonElement vault = resources.Single(r => r.GetProperty("type").GetString() == "Microsoft.KeyVault/vaults");
        Assert.True(vault.GetProperty("properties").GetProperty("enableRbacAuthorization").GetBoolean());
        Assert.Equal(3, resources.Count(r => r.GetProperty("type").GetString() == "Microsoft.KeyVault/vaults/secrets"));

        // The identity gets the data-plane roles the backend and the secrets need (built-in role ids, by name in the assignments).
        string roleAssignments = string.Join('\n', resources.Where(r => r.GetProperty("type").GetString() == "Microsoft.Authorization/roleAssignments").Select(r => r.GetRawText()));
        JsonElement roles = arm.RootElement.GetProperty("variables").GetProperty("roles");
        foreach (var (name, id) in new[]
        {
            ("storageBlobDataContributor", "ba92f5b4-2d11-453d-a403-e96b0029c9fe"),
            ("storageQueueDataContributor", "974c5e8b-45b9-4653-ba55-5f855dd0fb88"),
            ("storageTableDataContributor", "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"),
            ("keyVaultSecretsUser", "4633458b-17de-408a-b874-0445c86b69e6"),
        })
        {
            Assert.Equal(id, roles.GetProperty(name).GetString());
            Assert.Contains($"variables('roles').{name}", roleAssignments, StringComparison.Ordinal);
        }

        // The app references Key Vault for every secret and connects to storage by identity, never by key.
        JsonElement app = resources.Single(r => r.GetProperty("type").GetString() == "Microsoft.App/containerApps");
        JsonElement[] secrets = [.. app.GetProperty("properties").GetProperty("configuration").GetProperty("secrets").EnumerateArray()];
        Assert.Equal(3, secrets.Length);
        Assert.All(secrets, s => Assert.True(s.TryGetProperty("keyVaultUrl", out _) && !s.TryGetProperty("value", out _)));
        JsonElement container = app.GetProperty("properties").GetProperty("template").GetProperty("containers")[0];
        var env = container.GetProperty("env").EnumerateArray().ToDictionary(e => e.GetProperty("name").GetString()!, e => e);
        Assert.True(env.ContainsKey("AzureWebJobsStorage__accountName"));
        Assert.Equal("managedidentity", env["AzureWebJobsStorage__credential"].GetProperty("value").GetString());
        Assert.False(env.ContainsKey("AzureWebJobsStorage"));
        // Exactly the identity-based settings the host reads (AzureStorageConnectionSettings), the user-assigned identity named by its client id.
        Assert.Equal(
            ["AzureWebJobsStorage__accountName", "AzureWebJobsStorage__clientId", "AzureWebJobsStorage__credential"],
            env.Keys.Where(k => k.StartsWith("AzureWebJobsStorage", StringComparison.Ordinal)).Order(StringComparer.Ordinal));
        Assert.Contains("clientId", env["AzureWebJobsStorage__clientId"].GetProperty("value").GetString(), StringComparison.Ordinal);
        Assert.Contains("userAssignedIdentities", env["AzureWebJobsStorage__clientId"].GetProperty("value").GetString(), StringComparison.Ordinal);
        Assert.Equal("model-api-key", env["Model__ApiKey"].GetProperty("secretRef").GetString());
        Assert.Equal("serve", container.GetProperty("args")[0].GetString());

        // Secrets are secure parameters without defaults.
        JsonElement parameters = arm.RootElement.GetProperty("parameters");
        foreach (string name in new[] { "modelApiKey", "webhookSecret", "managementKey" })
        {
            Assert.Equal("securestring", parameters.GetProperty(name).GetProperty("type").GetString());
            Assert.False(parameters.GetProperty(name).TryGetProperty("defaultValue", out _));
        }
    }

    [Fact(Timeout = 180_000)]
    public async Task BicepBuildParams_ExampleParameters_MatchTheTemplate()
    {
        var (code, stdout, stderr) = await RunBicepAsync("build-params", Path.Combine(Root, "infra", "main.bicepparam"), "--stdout");

        Assert.True(code == 0, $"bicep build-params exited {code}: {stderr}");
        Assert.DoesNotContain("Warning", stderr, StringComparison.OrdinalIgnoreCase);
        using JsonDocument doc = JsonDocument.Parse(stdout);
        using JsonDocument parameters = JsonDocument.Parse(doc.RootElement.GetProperty("parametersJson").GetString()!);
        Assert.Equal("orch", parameters.RootElement.GetProperty("parameters").GetProperty("namePrefix").GetProperty("value").GetString());
    }

    private static JsonElement[] Resources(JsonElement template)
    {
        JsonElement resources = template.GetProperty("resources");
        // languageVersion 2.0 templates keep resources by symbolic name; 1.0 templates in an array.
        return resources.ValueKind == JsonValueKind.Object
            ? [.. resources.EnumerateObject().Select(p => p.Value)]
            : [.. resources.EnumerateArray()];
    }

    private static async Task<(int Code, string Stdout, string Stderr)> RunBicepAsync(params string[] args)
    {
        string bicep = LocateBicep();
        var start = new ProcessStartInfo(bicep)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string a in args)
        {
            start.ArgumentList.Add(a);
        }

        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        using var process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        return (process.ExitCode, await stdout, await stderr);
    }

    /// <summary>The bicep binary of the restored Azure.Bicep.CommandLine.linux-x64 package.</summary>
    private static string LocateBicep()
    {
        string packageRoot = Metadata("BicepPackageRoot");
        string bicep = Path.Combine(packageRoot, "tools", "bicep");
        Assert.True(File.Exists(bicep), $"bicep not found at {bicep}: run `dotnet restore` (package Azure.Bicep.CommandLine.linux-x64).");
        if (!OperatingSystem.IsWindows())
        {
            UnixFileMode mode = File.GetUnixFileMode(bicep);
            if ((mode & UnixFileMode.UserExecute) == 0)
            {
                // NuGet does not always keep the executable bit when it extracts a package.
                File.SetUnixFileMode(bicep, mode | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
            }
        }

        return bicep;
    }

    private static string Metadata(string key) =>
        typeof(BicepTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().SingleOrDefault(a => a.Key == key)?.Value is { Length: > 0 } value
            ? value
            : throw new InvalidOperationException($"Assembly metadata '{key}' is missing: the test project sets it from MSBuild.");
}
