// A small payments service whose POST /refunds and POST /charges honour Idempotency-Key the way payment APIs do.
// dotnet run --project samples/PaymentsService -- --urls http://127.0.0.1:0 --db ledger.db
await PaymentsService.PaymentsApp.Build(args).RunAsync();
