import { Counter, Gauge, Registry, type MetricValueWithName } from 'prom-client';
import { DURATION_BUCKETS } from '../consumer/reporter.js';
import type { Snapshot } from './snapshot.js';

/**
 * The Prometheus text for one snapshot. Totals are the sums of what each
 * live worker counted since it started, so a restarted worker shows as a
 * counter reset, which `rate()` and `increase()` allow for.
 */
export async function prometheusText(snapshot: Snapshot): Promise<{ contentType: string; text: string }> {
  const registry = new Registry();
  const gauge = (name: string, help: string, value: number) => new Gauge({ name, help, registers: [registry] }).set(value);
  gauge('huey_queue_depth', 'Tasks waiting to run', snapshot.pending);
  gauge('huey_scheduled_tasks', 'Tasks waiting for their time', snapshot.scheduledCount);
  gauge('huey_workers', 'Workers that reported in the last 5 seconds', snapshot.workers.filter((w) => !w.silent).length);
  gauge('huey_running_tasks', 'Tasks running now', snapshot.running.length);
  gauge('huey_dead_letters', 'Messages set aside because they could not run', snapshot.deadLetters);

  // Per queue: `huey_queue_depth` and the others above are the totals over every queue.
  const perQueue = (name: string, help: string, value: (row: Snapshot['queues'][number]) => number) => {
    const metric = new Gauge({ name, help, labelNames: ['queue'], registers: [registry] });
    for (const row of snapshot.queues) metric.set({ queue: row.name }, value(row));
  };
  perQueue('huey_queue_pending', 'Tasks waiting to run, by queue', (row) => row.pending);
  perQueue('huey_queue_scheduled', 'Tasks waiting for their time, by queue', (row) => row.scheduled);
  perQueue('huey_queue_dead_letters', 'Dead letters, by queue', (row) => row.deadLetters);
  if (snapshot.records) perQueue('huey_queue_failed_tasks', 'Tasks that failed for good, listed while their records are kept, by queue', (row) => row.failed);
  perQueue('huey_queue_paused', '1 while the queue is paused by itself, by queue', (row) => (row.paused ? 1 : 0));
  perQueue('huey_queue_workers', 'Reporting workers that serve the queue', (row) => row.workers);
  const queueRuns = new Counter({ name: 'huey_queue_tasks_total', help: 'Task runs by queue and outcome', labelNames: ['queue', 'outcome'], registers: [registry] });
  for (const row of snapshot.queues) for (const [outcome, n] of Object.entries(row.runs)) queueRuns.inc({ queue: row.name, outcome }, n);

  const byPriority = new Gauge({ name: 'huey_queue_depth_by_priority', help: 'Tasks waiting to run, by priority (priority storages only)', labelNames: ['priority'], registers: [registry] });
  for (const [priority, count] of snapshot.pendingByPriority ?? []) byPriority.set({ priority: String(priority) }, count);
  const enqueued = new Counter({ name: 'huey_tasks_enqueued_total', help: 'Tasks enqueued or scheduled, by task name, as producers counted them', labelNames: ['task'], registers: [registry] });
  for (const [task, n] of Object.entries(snapshot.enqueued)) enqueued.inc({ task }, n);

  const runs = new Counter({ name: 'huey_tasks_total', help: 'Task runs by task name and outcome (complete, failed, retrying, revoked, expired, canceled, locked)', labelNames: ['task', 'outcome'], registers: [registry] });
  const buckets = new Map<string, { counts: number[]; seconds: number }>();
  for (const worker of snapshot.workers) {
    for (const [task, counts] of Object.entries(worker.tasks)) {
      for (const [outcome, n] of Object.entries(counts.outcomes)) runs.inc({ task, outcome }, n);
      const total = buckets.get(task) ?? { counts: new Array(DURATION_BUCKETS.length + 1).fill(0), seconds: 0 };
      counts.buckets.forEach((n, i) => (total.counts[i]! += n));
      total.seconds += counts.seconds;
      buckets.set(task, total);
    }
  }
  registry.registerMetric(durationHistogram(buckets) as never);
  return { contentType: registry.contentType, text: await registry.metrics() };
}

/**
 * The workers' run durations as a Prometheus histogram. prom-client's own
 * Histogram only observes values; the buckets here were counted by the
 * workers, so they are handed to the registry as a ready metric.
 */
function durationHistogram(buckets: Map<string, { counts: number[]; seconds: number }>) {
  const name = 'huey_task_duration_seconds';
  const help = 'How long task runs took, by task name';
  const get = async () => {
    const values: Array<MetricValueWithName<string>> = [];
    for (const [task, { counts, seconds }] of buckets) {
      let cumulative = 0;
      counts.forEach((n, i) => {
        cumulative += n;
        const le = i < DURATION_BUCKETS.length ? String(DURATION_BUCKETS[i]) : '+Inf';
        values.push({ metricName: `${name}_bucket`, labels: { task, le }, value: cumulative });
      });
      values.push({ metricName: `${name}_sum`, labels: { task }, value: seconds });
      values.push({ metricName: `${name}_count`, labels: { task }, value: cumulative });
    }
    return { name, help, type: 'histogram', aggregator: 'sum', values };
  };
  return { name, help, get };
}
