using Orchestrator.Agents;
using Orchestrator.Durable.History;

namespace Orchestrator.Bench;

/// <summary>
/// Where a durable turn's wall time goes, read from the timestamps its history already records: each episode's start
/// (<see cref="OrchestratorStartedEvent"/>), each activity's scheduling (in its episode) and completion, the card
/// (the confirmation's <see cref="TimerCreatedEvent"/>) and the approval (<see cref="EventRaisedEvent"/>). The
/// medians over all measured turns say which hop costs what; the model's simulated latency is taken out of the
/// model calls, so what is left is the engine's.
/// </summary>
internal static class TurnTimeline
{
    public static Dictionary<string, object?> Summarize(IEnumerable<(IReadOnlyList<HistoryEvent> History, DateTimeOffset CompletedAt)> turns, TimeSpan modelLatency)
    {
        var start = new List<double>();
        var modelOverhead = new List<double>();
        var tool = new List<double>();
        var toEpisode = new List<double>();
        var cardToApproval = new List<double>();
        var finish = new List<double>();
        var episodes = new List<double>();
        foreach (var (history, completedAt) in turns)
        {
            var scheduled = new Dictionary<int, (string Name, DateTimeOffset At)>();
            DateTimeOffset? episode = null, card = null;
            var pending = new List<DateTimeOffset>();
            int count = 0;
            foreach (HistoryEvent e in history)
            {
                switch (e)
                {
                    case OrchestratorStartedEvent:
                        // Messages recorded in this episode waited from their own timestamp until it started.
                        episode = e.Timestamp;
                        count++;
                        break;
                    case ExecutionStartedEvent when episode is { } first:
                        // Recorded in the first episode, with the time the client scheduled the turn.
                        start.Add((first - e.Timestamp).TotalMilliseconds);
                        break;
                    case TaskScheduledEvent s when episode is { } at:
                        scheduled[s.EventId] = (s.Name, at);
                        break;
                    case TaskCompletedEvent done when scheduled.TryGetValue(done.TaskScheduledId, out var task) && episode is { } ep:
                        double ms = (done.Timestamp - task.At).TotalMilliseconds;
                        if (task.Name == TurnRegistration.ProposeActivity)
                        {
                            modelOverhead.Add(ms - modelLatency.TotalMilliseconds);
                        }
                        else
                        {
                            tool.Add(ms);
                        }

                        toEpisode.Add((ep - done.Timestamp).TotalMilliseconds);
                        break;
                    case TimerCreatedEvent when episode is { } cardAt:
                        card = cardAt;
                        break;
                    case EventRaisedEvent raised when episode is { } ep2:
                        if (card is { } shown)
                        {
                            cardToApproval.Add((raised.Timestamp - shown).TotalMilliseconds);
                        }

                        toEpisode.Add((ep2 - raised.Timestamp).TotalMilliseconds);
                        break;
                }
            }

            if (episode is { } last)
            {
                finish.Add((completedAt - last).TotalMilliseconds);
            }

            episodes.Add(count);
        }

        return new Dictionary<string, object?>
        {
            ["episodesPerTurn"] = BenchRunner.Percentile(episodes, 0.5),
            ["scheduleToFirstEpisodeMs"] = P50(start),
            ["modelCallOverheadMs"] = P50(modelOverhead),
            ["toolCallMs"] = P50(tool),
            ["completionToEpisodeMs"] = P50(toEpisode),
            ["cardToApprovalMs"] = P50(cardToApproval),
            ["lastEpisodeToCompletedMs"] = P50(finish),
            ["measuredFrom"] = "history timestamps of every measured turn, medians; modelCallOverheadMs = scheduled-to-completed minus the simulated latency",
        };
    }

    private static double? P50(List<double> values) => values.Count == 0 ? null : BenchRunner.Round(BenchRunner.Percentile(values, 0.5), 1);
}
