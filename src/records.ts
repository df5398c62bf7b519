import type { Outcome } from './huey.js';
import type { Message } from './message.js';
import { storableText } from './storable-text.js';
import { DEFAULT_QUEUE } from './validate.js';

/**
 * Where a task stands. `enqueued` and `scheduled` wait, `deferred` for the
 * tasks it depends on (`waitingOn` names one); `running` has run
 * longer than a turn of its worker's event loop; `retrying` failed and waits
 * for its next try; the rest are ends: `complete`, `failed` (for good),
 * `canceled`, `revoked`, `expired` (dropped unrun), and `dead` (dead-lettered:
 * it could not be read or run at all).
 */
export type TaskState = 'enqueued' | 'scheduled' | 'deferred' | 'running' | 'retrying' | 'complete' | 'failed' | 'canceled' | 'revoked' | 'expired' | 'dead';

/** A task's record: `huey.status(id)`, `result.status()`, `huey status ID`. */
export interface TaskStatus {
  id: string;
  state: TaskState;
  name: string;
  queue: string;
  /** When the call was first enqueued or scheduled. */
  created: Date | null;
  /** When it was last put in the queue (a retry puts it there again). */
  enqueued: Date | null;
  /** When it is due, for a scheduled or retrying task. */
  eta: Date | null;
  /** When its last run started. */
  started: Date | null;
  /** When it reached its state, for the ends. */
  ended: Date | null;
  /** The worker that ran it last. */
  worker: string | null;
  /** Retries left after its last run. */
  retries: number | null;
  /** The error of its last failed run. */
  error: { name: string; message: string } | null;
  /** The latest value the task gave `context.progress()`. */
  progress: unknown;
  /** The latest lines its run gave `context.log()`, oldest first (at most 50). */
  log: string[];
  /** For a deferred task: a task it waits for. */
  waitingOn: string | null;
}

/** The state an outcome leaves a task in. */
export function stateOf(outcome: Outcome): TaskState {
  switch (outcome.status) {
    case 'locked':
      return 'failed';
    default:
      return outcome.status;
  }
}

/**
 * The fields a record is written with, as strings, absent values left out.
 * With `identity`, also the message's name, queue and retries left: what the
 * writes as it is enqueued (or retried, or dead-lettered) carry, so that the
 * writes of each run carry no more than what changed.
 */
export function recordFields(message: Message, fields: Record<string, string | number | null | undefined>, identity: boolean): Record<string, string> {
  const written: Record<string, string> = {};
  if (identity) {
    written.name = message.name;
    written.queue = message.queue ?? DEFAULT_QUEUE;
    written.retries = String(message.retries);
  }
  for (const key in fields) {
    const value = fields[key];
    if (value !== null && value !== undefined) written[key] = typeof value === 'number' ? String(value) : storableText(value);
  }
  return written;
}

/** The error fields of a record: its name and message, from any thrown value. */
export function errorFields(error: unknown): { errorName: string; errorMessage: string } {
  return error instanceof Error ? { errorName: error.name, errorMessage: error.message } : { errorName: 'Error', errorMessage: String(error) };
}

const time = (value: string | undefined): Date | null => (value === undefined || !Number.isFinite(Number(value)) ? null : new Date(Number(value)));

/** A record read back as a status; fields from storage are data, read defensively. */
export function statusOf(id: string, fields: Record<string, string>): TaskStatus {
  let progress: unknown;
  if (fields.progress !== undefined) {
    try {
      progress = JSON.parse(fields.progress);
    } catch {
      progress = fields.progress;
    }
  }
  let log: string[] = [];
  if (fields.log !== undefined) {
    try {
      const lines: unknown = JSON.parse(fields.log);
      if (Array.isArray(lines)) log = lines.map(String);
    } catch {
      log = [fields.log];
    }
  }
  return {
    id,
    state: (fields.state ?? 'enqueued') as TaskState,
    name: fields.name ?? '',
    queue: fields.queue ?? DEFAULT_QUEUE,
    created: time(fields.created),
    enqueued: time(fields.enqueued),
    eta: time(fields.eta),
    started: time(fields.started),
    ended: time(fields.ended),
    worker: fields.worker ?? null,
    retries: fields.retries === undefined ? null : Number(fields.retries),
    error: fields.errorName === undefined ? null : { name: fields.errorName, message: fields.errorMessage ?? '' },
    progress,
    log,
    waitingOn: fields.state === 'deferred' ? (fields.waitingOn ?? null) : null,
  };
}
