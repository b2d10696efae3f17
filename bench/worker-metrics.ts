// The worker's own view of a pass, from the Temporal SDK's histograms it serves for Prometheus
// (BERTH_WORKER_METRICS_ADDRESS): means over the turns between two scrapes. They split a workflow
// task into the worker's activation and the server taking its answer, which the history's event
// times (bench/temporal-split.ts) cannot.
import { round } from './stats.ts';

/** Each histogram series' `_sum` and `_count`, by metric name and labels (`name{labels}`). */
type Scrape = Map<string, number>;

export async function scrapeWorkerMetrics(address: string): Promise<Scrape> {
  const text = await (await fetch(`http://${address}/metrics`)).text();
  const series: Scrape = new Map();
  for (const line of text.split('\n')) {
    const m = /^(temporal_\w+_seconds_(?:sum|count))(\{[^}]*\})? (\S+)$/.exec(line);
    if (m) series.set(`${m[1]}${m[2] ?? ''}`, Number(m[3]));
  }
  return series;
}

/** What a series is: a histogram's name (without `_seconds`) and a label it must carry. */
const FIGURES = {
  workflow_task_in_worker_ms: ['temporal_workflow_task_execution_latency', 'workflow_type="sessionWorkflow"'],
  workflow_task_answer_to_server_ms: ['temporal_request_latency', 'operation="RespondWorkflowTaskCompleted"'],
  workflow_task_schedule_to_start_ms: ['temporal_workflow_task_schedule_to_start_latency', ''],
  model_step_in_worker_ms: ['temporal_activity_execution_latency', 'activity_type="modelStep"'],
} as const;

/** Mean milliseconds of each figure between two scrapes (every workflow task of a turn counts). */
export function workerMeans(before: Scrape, after: Scrape): Record<keyof typeof FIGURES, number> {
  const delta = (metric: string, label: string, part: 'sum' | 'count') => {
    let total = 0;
    for (const [key, value] of after) {
      if (key.startsWith(`${metric}_seconds_${part}{`) && key.includes(label)) total += value - (before.get(key) ?? 0);
    }
    return total;
  };
  const mean = ([metric, label]: readonly [string, string]) => round((delta(metric, label, 'sum') * 1000) / delta(metric, label, 'count'));
  return Object.fromEntries(Object.entries(FIGURES).map(([name, series]) => [name, mean(series)])) as Record<keyof typeof FIGURES, number>;
}
