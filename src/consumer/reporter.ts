import { hostname } from 'node:os';
import type { Huey, Outcome } from '../huey.js';
import type { Message } from '../message.js';
import { DEFAULT_QUEUE } from '../validate.js';

/** Upper bounds, in seconds, of the run-duration histogram buckets (Prometheus style; the last is +Inf). */
export const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60];

/** A task's totals in one worker since it started. */
export interface TaskCounts {
  /** Runs by outcome: complete, failed, retrying, revoked, expired, canceled, locked. */
  outcomes: Record<string, number>;
  /** Runs per duration bucket (same order as DURATION_BUCKETS, then +Inf), and their total seconds. */
  buckets: number[];
  seconds: number;
}

/** What a worker last said about itself; written about once a second. */
export interface WorkerStatus {
  id: string;
  host: string;
  pid: number;
  concurrency: number;
  startedAt: number;
  /** When this status was written (ms since the epoch): its heartbeat. */
  at: number;
  running: Array<{ id: string; name: string; started: number }>;
  tasks: Record<string, TaskCounts>;
  /** [minute start in ms, completed, failed] for the last hour's minutes with runs. */
  minutes: Array<[number, number, number]>;
  /** The queues it serves, in order (absent in statuses written before queues existed). */
  queues?: string[];
  /** Runs by queue, then by outcome. */
  queueOutcomes?: Record<string, Record<string, number>>;
}

/** One run's end, as the event log keeps it. */
export interface ActivityEvent {
  at: number;
  id: string;
  name: string;
  status: Outcome['status'];
  ms: number;
  worker: string;
  /** The error with its stack, for runs that did not complete. */
  error?: string;
  /** The message as stored, for a run that failed for good: it can be retried from here. */
  message?: string;
}

/** How many events the storage keeps, across all workers. */
export const EVENT_LOG_SIZE = 500;
/** Per write, every failure (up to this many) and only the latest completions go to the log. */
const FAILURES_PER_WRITE = 100;
const COMPLETIONS_PER_WRITE = 20;
const MINUTE = 60_000;

/**
 * Keeps a worker's counts in memory as its runs end, and writes them with
 * its running tasks and recent events to the storage once a second, when it
 * also looks whether the queue is paused: the cost per task is a few
 * additions, and per worker three commands a second.
 */
export class Reporter {
  private readonly startedAt = Date.now();
  private readonly running = new Map<string, { name: string; started: number }>();
  private readonly tasks: Record<string, TaskCounts> = {};
  private readonly queueOutcomes: Record<string, Record<string, number>> = {};
  private readonly minutes = new Map<number, [number, number, number]>();
  private failures: ActivityEvent[] = [];
  private completions: ActivityEvent[] = [];
  private timer?: NodeJS.Timeout;
  private writing?: Promise<void>;
  /** Whether the whole instance was paused when last looked at (once a second, with each write). */
  paused = false;
  /** The worker's queues paused by themselves, when last looked at. */
  pausedQueues = new Set<string>();

  constructor(
    private readonly huey: Huey,
    private readonly workerId: string,
    private readonly concurrency: number,
    /** The worker's queues, whose pause flags it reads. */
    private readonly queues: readonly string[] = [],
    private readonly intervalMs = 1000,
  ) {}

  started(message: Message): void {
    this.running.set(message.id, { name: message.name, started: Date.now() });
  }

  /** A run that ended without an outcome (the storage failed); it will run again. */
  abandoned(message: Message): void {
    this.running.delete(message.id);
  }

  finished(message: Message, outcome: Outcome, ms: number): void {
    this.running.delete(message.id);
    const counts = (this.tasks[message.name] ??= { outcomes: {}, buckets: new Array(DURATION_BUCKETS.length + 1).fill(0), seconds: 0 });
    counts.outcomes[outcome.status] = (counts.outcomes[outcome.status] ?? 0) + 1;
    const byQueue = (this.queueOutcomes[message.queue ?? DEFAULT_QUEUE] ??= {});
    byQueue[outcome.status] = (byQueue[outcome.status] ?? 0) + 1;
    const seconds = ms / 1000;
    let bucket = DURATION_BUCKETS.findIndex((bound) => seconds <= bound);
    if (bucket < 0) bucket = DURATION_BUCKETS.length;
    counts.buckets[bucket]!++;
    counts.seconds += seconds;

    const now = Date.now();
    const minute = now - (now % MINUTE);
    const row = this.minutes.get(minute) ?? [minute, 0, 0];
    if (outcome.status === 'complete') row[1]++;
    else if (outcome.status === 'failed' || outcome.status === 'locked') row[2]++;
    this.minutes.set(minute, row);

    const event: ActivityEvent = { at: now, id: message.id, name: message.name, status: outcome.status, ms: Math.round(ms * 1000) / 1000, worker: this.workerId };
    if (outcome.status === 'complete') {
      this.completions.push(event);
      if (this.completions.length > COMPLETIONS_PER_WRITE) this.completions.shift();
    } else if (this.failures.length < FAILURES_PER_WRITE) {
      if ('error' in outcome && outcome.error !== undefined) event.error = errorWithStack(outcome.error);
      if (outcome.status === 'failed' || outcome.status === 'locked') event.message = this.huey.serializeMessage(message);
      this.failures.push(event);
    }
  }

  /**
   * Write once a second until `stop()`. Resolves once the first write has
   * read the pause flags, so a worker starting while its queue is paused
   * takes nothing.
   */
  start(): Promise<void> {
    this.timer ??= setInterval(() => void this.write(), this.intervalMs);
    this.timer.unref();
    return this.write();
  }

  /** Write a last time and forget this worker's status: it is gone. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.writing;
    try {
      await this.flushEvents();
      await this.huey.storage.dropStatus(this.workerId);
    } catch {
      // The storage is away: its status ages out on the dashboard instead.
    }
  }

  status(): WorkerStatus {
    const hourAgo = Date.now() - 60 * MINUTE;
    for (const minute of this.minutes.keys()) if (minute < hourAgo) this.minutes.delete(minute);
    return {
      id: this.workerId,
      host: hostname(),
      pid: process.pid,
      concurrency: this.concurrency,
      startedAt: this.startedAt,
      at: Date.now(),
      running: [...this.running].map(([id, run]) => ({ id, ...run })),
      tasks: this.tasks,
      minutes: [...this.minutes.values()],
      queues: [...this.queues],
      queueOutcomes: this.queueOutcomes,
    };
  }

  private write(): Promise<void> {
    // One write at a time: a slow storage must not pile them up.
    this.writing ??= (async () => {
      try {
        const [paused] = await Promise.all([
          this.huey.pausedQueues(this.queues),
          this.huey.storage.putStatus(this.workerId, JSON.stringify(this.status())),
          this.flushEvents(),
        ]);
        this.paused = paused.all;
        this.pausedQueues = paused.queues;
      } catch (error) {
        this.huey.logger.debug(`${this.workerId}: could not write its status: ${error instanceof Error ? error.message : String(error)}`);
      } finally {
        this.writing = undefined;
      }
    })();
    return this.writing;
  }

  private async flushEvents(): Promise<void> {
    const events = [...this.completions, ...this.failures].sort((a, b) => a.at - b.at);
    this.completions = [];
    this.failures = [];
    if (events.length > 0) await this.huey.storage.pushEvents(events.map((event) => JSON.stringify(event)), EVENT_LOG_SIZE);
  }
}

function errorWithStack(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  return error.stack ?? `${error.name}: ${error.message}`;
}
