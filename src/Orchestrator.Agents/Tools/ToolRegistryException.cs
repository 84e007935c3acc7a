namespace Orchestrator.Agents;

/// <summary>
/// The tool set failed its startup checks. <see cref="Exception.Message"/> lists every problem
/// found, not only the first, so one restart fixes them all.
/// </summary>
public sealed class ToolRegistryException : Exception
{
    /// <summary>Creates the exception from its problems.</summary>
    /// <param name="problems">One line per problem.</param>
    public ToolRegistryException(IReadOnlyList<string> problems)
        : base(Format(problems)) => Problems = problems;

    /// <summary>One line per problem, in the order the checks found them.</summary>
    public IReadOnlyList<string> Problems { get; }

    private static string Format(IReadOnlyList<string> problems) =>
        $"The tool set was refused ({problems.Count} problem{(problems.Count == 1 ? "" : "s")}):"
        + string.Concat(problems.Select(p => Environment.NewLine + "  - " + p));
}
