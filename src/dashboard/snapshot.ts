import { DateTime } from 'luxon';
import type { ActivityEvent, WorkerStatus } from '../consumer/reporter.js';
import type { Huey } from '../huey.js';
import { enqueuedKey } from '../enqueue-counter.js';
import { lockKey } from '../lock.js';
import type { Message } from '../message.js';
import type { DeadLetter, Storage } from '../storage/storage.js';
import { DEFAULT_QUEUE } from '../validate.js';
import { readPending, readScheduled, isCorrupt, type CorruptItem } from './read-items.js';

/** A worker whose status is older than this is shown as silent (it died, or its storage is away). */
export const SILENT_AFTER_MS = 5000;
/** Statuses older than this are dropped: their workers are gone for good. */
const FORGET_AFTER_MS = 60 * 60_000;
/** How many pending and scheduled tasks, events and flags a snapshot lists. */
const LIST_LIMIT = 50;

export interface TaskRow {
  id: string;
  name: string;
  args: unknown[];
  priority: number;
  eta: number | null;
  queue: string;
}

/** One queue's state: its depth, schedule, dead letters and pause, and the runs the live workers counted on it. */
export interface QueueRow {
  name: string;
  shards: number;
  pending: number;
  scheduled: number;
  deadLetters: number;
  /** Tasks of the queue that failed for good, while their records are kept (0 without records). */
  failed: number;
  paused: boolean;
  /** Runs by outcome (complete, failed, ...) counted by the workers that report, since each started. */
  runs: Record<string, number>;
  /** The workers serving it, as they report. */
  workers: number;
}

/** Everything the dashboard shows, read in one go; also what /metrics and `huey info` report. */
export interface Snapshot {
  name: string;
  storage: string;
  at: number;
  /** Tasks waiting to run, on every queue. */
  pending: number;
  /** Every queue the instance knows, in order, with its counts. */
  queues: QueueRow[];
  /** Waiting tasks of the default queue by priority, highest first; null where the storage keeps one first-in-first-out line. */
  pendingByPriority: Array<[priority: number, count: number]> | null;
  /** The next tasks to run, queue by queue; an item that does not read back as a task is listed as corrupt in its place. */
  pendingTasks: Array<TaskRow | CorruptItem>;
  /** Tasks enqueued (or scheduled) by task name, as producers counted them. */
  enqueued: Record<string, number>;
  scheduledCount: number;
  scheduled: Array<TaskRow | CorruptItem>;
  periodic: Array<{ name: string; schedule: string; nextRun: string | null }>;
  workers: Array<WorkerStatus & { silent: boolean }>;
  running: Array<{ worker: string; id: string; name: string; started: number }>;
  events: ActivityEvent[];
  /** Revoked task names and task ids. */
  revoked: Array<{ kind: 'task' | 'id'; target: string }>;
  locks: string[];
  /** Dead letters on every queue. */
  deadLetters: number;
  /** The newest dead letters of every queue, with the task they hold when it can be read. */
  dead: Array<{ id: string | null; name: string | null; reason: string; at: number; queue: string }>;
  /** Whether the instance keeps task records: without them there is no failed registry or status by id. */
  records: boolean;
  /** The latest tasks that failed for good, from their records (empty without records). */
  failedTasks: Array<{ id: string; name: string; queue: string; ended: number | null; error: string }>;
  /** The whole instance is paused (each queue's own pause is in `queues`). */
  paused: boolean;
  /** Completed and failed runs per minute over the last hour, all workers together, oldest first. */
  throughput: Array<[minute: number, completed: number, failed: number]>;
  /** The lists shortened to keep the snapshot under the dashboard's size bound (see fit.ts); absent when whole. */
  truncated?: string[];
}

const row = (m: Message | CorruptItem): TaskRow | CorruptItem =>
  isCorrupt(m) ? m : { id: m.id, name: m.name, args: m.args, priority: m.priority, eta: m.eta, queue: m.queue ?? DEFAULT_QUEUE };

/** Sum of `read` over every shard of `queue`. */
async function total(huey: Huey, queue: string, read: (storage: Storage) => Promise<number>): Promise<number> {
  return (await Promise.all(huey.queueStorages(queue).map(read))).reduce((a, b) => a + b, 0);
}

/** Each queue's counts, read for all queues at once. */
async function readQueues(huey: Huey): Promise<Array<Omit<QueueRow, 'runs' | 'workers'>>> {
  const names = huey.queueNames;
  const [paused, rows] = await Promise.all([
    huey.pausedQueues(names),
    Promise.all(
      names.map(async (name) => {
        const [pending, scheduled, deadLetters, failed] = await Promise.all([
          total(huey, name, (storage) => storage.queueSize()),
          total(huey, name, (storage) => storage.scheduleSize()),
          total(huey, name, (storage) => storage.deadLetterCount()),
          huey.records ? total(huey, name, (storage) => storage.failedCount()) : 0,
        ]);
        return { name, shards: huey.shardCount(name), pending, scheduled, deadLetters, failed };
      }),
    ),
  ]);
  return rows.map((row) => ({ ...row, paused: paused.queues.has(row.name) }));
}

/** The newest dead letters of `queue` (of every queue when not given), newest first. */
export async function readDeadLetters(huey: Huey, limit: number, queue?: string): Promise<Array<DeadLetter & { queue: string }>> {
  const letters: Array<DeadLetter & { queue: string }> = [];
  for (const source of huey.queueSources(queue)) letters.push(...(await source.storage.deadLetters(limit)).map((letter) => ({ ...letter, queue: source.queue })));
  return letters.sort((a, b) => b.at - a.at).slice(0, limit);
}

export async function takeSnapshot(huey: Huey): Promise<Snapshot> {
  const { storage } = huey;
  const now = Date.now();
  const [queueCounts, pendingByPriority, pendingTasks, scheduled, statuses, events, revokedIds, revokedTasks, locks, deadLetters, enqueuedCounters, paused, failedTasks] =
    await Promise.all([
      readQueues(huey),
      storage.queueSizeByPriority(),
      // Read item by item: one corrupt message must not blank the whole dashboard.
      readPending(huey, LIST_LIMIT),
      readScheduled(huey, LIST_LIMIT),
      storage.statuses(),
      storage.events(LIST_LIMIT),
      storage.dataKeys('r:', LIST_LIMIT),
      storage.dataKeys('rt:', LIST_LIMIT),
      storage.dataKeys(lockKey(''), LIST_LIMIT),
      readDeadLetters(huey, LIST_LIMIT),
      storage.counters(enqueuedKey('')),
      huey.isPaused(),
      huey.records ? huey.failed({ limit: LIST_LIMIT }) : [],
    ]);
  const sum = (field: 'pending' | 'scheduled' | 'deadLetters') => queueCounts.reduce((n, row) => n + row[field], 0);
  const enqueued = Object.fromEntries(Object.entries(enqueuedCounters).map(([key, count]) => [key.slice(enqueuedKey('').length), count]));

  const workers: Snapshot['workers'] = [];
  for (const [id, text] of Object.entries(statuses)) {
    const status = JSON.parse(text) as WorkerStatus;
    if (now - status.at > FORGET_AFTER_MS) {
      await storage.dropStatus(id);
      continue;
    }
    workers.push({ ...status, silent: now - status.at > SILENT_AFTER_MS });
  }
  workers.sort((a, b) => a.id.localeCompare(b.id));

  const minutes = new Map<number, [number, number, number]>();
  for (const worker of workers) {
    for (const [minute, completed, failed] of worker.minutes) {
      const total = minutes.get(minute) ?? [minute, 0, 0];
      total[1] += completed;
      total[2] += failed;
      minutes.set(minute, total);
    }
  }

  const live = workers.filter((worker) => !worker.silent);
  const queues: QueueRow[] = queueCounts.map((counts) => {
    const runs: Record<string, number> = {};
    for (const worker of live) {
      for (const [outcome, n] of Object.entries(worker.queueOutcomes?.[counts.name] ?? {})) runs[outcome] = (runs[outcome] ?? 0) + n;
    }
    // Statuses from before queues served the default queue only.
    const serving = live.filter((worker) => (worker.queues ?? [DEFAULT_QUEUE]).includes(counts.name)).length;
    return { ...counts, runs, workers: serving };
  });

  const at = DateTime.fromMillis(now, { zone: 'utc' });
  return {
    name: huey.name,
    storage: storage.kind,
    at: now,
    pending: sum('pending'),
    queues,
    pendingByPriority,
    pendingTasks: pendingTasks.map(row),
    enqueued,
    scheduledCount: sum('scheduled'),
    scheduled: scheduled.map(row),
    periodic: huey.periodicTasks().map((definition) => {
      const schedule = definition.periodic!;
      const next = schedule.next?.(at);
      // A crontab names itself; a hand-written schedule function would print its source.
      const named = schedule.toString !== Function.prototype.toString;
      return { name: definition.name, schedule: named ? schedule.toString() : 'custom', nextRun: next ? next.toUTC().toISO({ suppressMilliseconds: true }) : null };
    }),
    workers,
    running: workers.filter((w) => !w.silent).flatMap((w) => w.running.map((run) => ({ worker: w.id, ...run }))),
    events: events.map((text) => JSON.parse(text) as ActivityEvent),
    revoked: [
      ...revokedTasks.map((key) => ({ kind: 'task' as const, target: key.slice('rt:'.length) })),
      ...revokedIds.map((key) => ({ kind: 'id' as const, target: key.slice('r:'.length) })),
    ],
    locks: locks.map((key) => key.slice(lockKey('').length)),
    deadLetters: sum('deadLetters'),
    dead: deadLetters.map((letter) => {
      let message: Message | undefined;
      try {
        message = huey.deserializeMessage(letter.data);
      } catch {
        // corrupt: shown by its reason alone
      }
      return { id: message?.id ?? null, name: message?.name ?? null, reason: letter.reason, at: letter.at, queue: letter.queue };
    }),
    records: huey.records,
    failedTasks: failedTasks.map((status) => ({
      id: status.id,
      name: status.name,
      queue: status.queue,
      ended: status.ended?.getTime() ?? null,
      error: status.error ? `${status.error.name}: ${status.error.message}` : '',
    })),
    paused,
    throughput: [...minutes.values()].filter(([minute]) => minute >= now - 60 * 60_000).sort((a, b) => a[0] - b[0]),
  };
}
