using System.Diagnostics;
using System.Net;
using System.Text;
using Microsoft.Data.Sqlite;

namespace PaymentsService.Tests;

/// <summary>The service as its own process, started the way the README says, with its ledger file surviving a restart.</summary>
public sealed class ProcessTests
{
    private static async Task<(Process Process, Uri Address)> StartProcessAsync(string db)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (string arg in new[] { Path.Combine(AppContext.BaseDirectory, "PaymentsService.dll"), "--urls", "http://127.0.0.1:0", "--db", db })
        {
            start.ArgumentList.Add(arg);
        }

        Process process = Process.Start(start)!;
        var address = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            const string Prefix = "payments-service listening on ";
            if (e.Data?.StartsWith(Prefix, StringComparison.Ordinal) == true)
            {
                address.TrySetResult(new Uri(e.Data[Prefix.Length..]));
            }
        };
        process.Exited += (_, _) => address.TrySetException(new InvalidOperationException("The payments service exited before listening."));
        process.EnableRaisingEvents = true;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return (process, await address.Task.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    private static async Task StopAsync(Process process)
    {
        process.Kill(entireProcessTree: true);
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        process.Dispose();
    }

    private static async Task<HttpResponseMessage> PostRefundAsync(HttpClient http, Uri address, string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(address, "/refunds"))
        {
            Content = new StringContent("""{"order_id":"A8472","amount":47.00,"currency":"USD"}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("Idempotency-Key", key);
        return await http.SendAsync(request);
    }

    [Fact(Timeout = 90_000)]
    public async Task Process_KilledAndRestartedOnTheSameLedger_ReplaysTheStoredRefund()
    {
        string db = Path.Combine(Path.GetTempPath(), $"payments-process-{Environment.ProcessId}.db");
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(20) };
        try
        {
            var (first, address1) = await StartProcessAsync(db);
            string body1;
            try
            {
                using HttpResponseMessage r1 = await PostRefundAsync(http, address1, "refund-A8472-1");
                Assert.Equal(HttpStatusCode.OK, r1.StatusCode);
                body1 = await r1.Content.ReadAsStringAsync();
            }
            finally
            {
                await StopAsync(first);
            }

            var (second, address2) = await StartProcessAsync(db);
            try
            {
                using HttpResponseMessage r2 = await PostRefundAsync(http, address2, "refund-A8472-1");
                string ledger = await http.GetStringAsync(new Uri(address2, "/ledger"));

                Assert.Equal(HttpStatusCode.OK, r2.StatusCode);
                Assert.Equal(body1, await r2.Content.ReadAsStringAsync());
                Assert.Equal("true", r2.Headers.GetValues("Idempotent-Replayed").Single());
                Assert.Single(System.Text.Json.JsonDocument.Parse(ledger).RootElement.GetProperty("entries").EnumerateArray());
            }
            finally
            {
                await StopAsync(second);
            }
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            foreach (string suffix in new[] { string.Empty, "-wal", "-shm" })
            {
                File.Delete(db + suffix);
            }
        }
    }
}
