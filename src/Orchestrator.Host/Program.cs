using Orchestrator.Host;

return await CommandLine.RunAsync(args, Console.Out, Console.Error, CancellationToken.None);
