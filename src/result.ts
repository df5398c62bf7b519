import { HueyError, ResultTimeout, StorageError, TaskError } from './errors.js';
import type { Huey, RescheduleOptions, RevokeOptions, StoredOutcome } from './huey.js';
import type { Message } from './message.js';
import type { TaskStatus } from './records.js';
import { DEFAULT_QUEUE } from './validate.js';

export interface GetOptions {
  /** Wait until the result is there. @defaultValue false */
  blocking?: boolean;
  /** Seconds to wait when blocking before rejecting with `ResultTimeout`; none waits for ever. */
  timeout?: number;
  /** Leave the result in the store for another reader. @defaultValue false */
  preserve?: boolean;
}

const EMPTY = Symbol('empty');

/** A waiting get() reads again at least this often, even without a notice. */
const RECHECK_MS = 1000;

/**
 * The handle for one enqueued task: its id, and a way to its result.
 * Results are read once by default (Huey pops them); the value is kept on
 * this object so a second `get()` gives it again.
 */
export class Result<T> {
  private value: T | typeof EMPTY = EMPTY;
  private pollDelay = 0;

  /** Resolves once the storage holds the task; rejects with the storage's error. */
  readonly enqueued: Promise<this>;
  /** The queue the task runs on, where its result is stored; undefined when not known (every queue is looked in). */
  readonly queue?: string;

  private taskId: string;

  /**
   * `enqueued` may resolve to another task's id: a call with a key that
   * joined the call holding it (see dedupe.ts); the handle then reads that task.
   */
  constructor(
    readonly huey: Huey,
    id: string,
    enqueued: Promise<unknown> = Promise.resolve(),
    /** The message as enqueued, when this handle came from the call itself. */
    readonly message?: Message,
    queue?: string,
  ) {
    this.taskId = id;
    this.enqueued = enqueued.then((joined) => {
      if (typeof joined === 'string') this.taskId = joined;
      return this;
    });
    this.queue = queue ?? (message ? (message.queue ?? DEFAULT_QUEUE) : undefined);
  }

  /**
   * The task's id. For a call with a key, final once `enqueued` resolves:
   * a call that joined another with the same key reads that one's id.
   */
  get id(): string {
    return this.taskId;
  }

  /** The id, once a keyed call knows whether it joined another. */
  private async settledId(): Promise<string> {
    if (this.message?.dedupe) await this.enqueued;
    return this.taskId;
  }

  /**
   * The task's return value. Non-blocking, it is `undefined` while the task
   * has not finished. Rejects with `TaskError` when the task failed for good,
   * with `ResultTimeout` when a blocking wait ran out.
   */
  get(options: GetOptions & { blocking: true }): Promise<T>;
  get(options?: GetOptions): Promise<T | undefined>;
  async get(options: GetOptions = {}): Promise<T | undefined> {
    if (this.value !== EMPTY) return this.value;
    this.checkResultsKept();
    await this.enqueued;
    const read = async () => {
      try {
        return await this.huey.readResult<T>(this.id, options.preserve ?? false, this.queue);
      } catch (error) {
        // A blocking wait rides out a storage that is briefly away (a Redis restart).
        if (options.blocking && error instanceof StorageError) return undefined;
        throw error;
      }
    };
    let outcome = await read();
    if (outcome === undefined && options.blocking) {
      const deadline = options.timeout === undefined ? Infinity : Date.now() + options.timeout * 1000;
      while (outcome === undefined) {
        const left = deadline - Date.now();
        if (left <= 0) throw new ResultTimeout(`no result for task ${this.id} within ${options.timeout}s`);
        outcome = await this.waitAndRead(read, Math.min(left, RECHECK_MS));
      }
    }
    if (outcome === undefined) return undefined;
    if ('error' in outcome) throw new TaskError(outcome.error);
    if (!options.preserve) this.value = outcome.value;
    return outcome.value;
  }

  /**
   * True once the task's outcome is stored (or was read by this handle),
   * without reading it away: Huey's `is_ready()`.
   */
  async isReady(): Promise<boolean> {
    if (this.value !== EMPTY) return true;
    this.checkResultsKept();
    const id = await this.settledId();
    for (const storage of this.huey.resultStorages(id, this.queue)) {
      if (await storage.hasDataForKey(id)) return true;
    }
    return false;
  }

  /** With `results: false` nothing is stored, so waiting for a result would wait for ever: say so at once. */
  private checkResultsKept(): void {
    if (!this.huey.results) {
      throw new HueyError(`huey "${this.huey.name}" keeps no results (results: false): task ${this.id} has no result to read`);
    }
  }

  /**
   * Listen for the storage's notice that this result was stored, read, and
   * if it was not there yet, wait for the notice (or `ms`, in case a notice
   * was lost to a reconnect) and read again.
   */
  private async waitAndRead(read: () => Promise<StoredOutcome<T> | undefined>, ms: number): Promise<StoredOutcome<T> | undefined> {
    let notified!: () => void;
    const notice = new Promise<void>((resolve) => (notified = resolve));
    let stop: (() => void) | null = null;
    try {
      stop = await this.watch(notified);
    } catch (error) {
      if (!(error instanceof StorageError)) throw error;
    }
    try {
      const outcome = await read();
      if (outcome !== undefined) return outcome;
      // Without notices (a storage that cannot send them, or one briefly away) poll often.
      this.pollDelay = stop ? 0 : Math.min(Math.max(this.pollDelay * 1.5, 5), 100);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([notice, new Promise((resolve) => (timer = setTimeout(resolve, stop ? ms : Math.min(ms, this.pollDelay))))]);
      clearTimeout(timer);
      return read();
    } finally {
      stop?.();
    }
  }

  /** Watch every storage the result may land in; null when one of them cannot notify. */
  private async watch(notified: () => void): Promise<(() => void) | null> {
    const stops: Array<() => void> = [];
    const stopAll = () => stops.forEach((stop) => stop());
    try {
      for (const storage of this.huey.resultStorages(this.id, this.queue)) {
        const stop = await storage.watchResult(this.id, notified);
        if (!stop) {
          stopAll();
          return null;
        }
        stops.push(stop);
      }
    } catch (error) {
      stopAll();
      throw error;
    }
    return stops.length === 1 ? stops[0]! : stopAll;
  }

  /** This task's record (state, times, worker, error, progress); null when there is none. See `huey.status`. */
  async status(): Promise<TaskStatus | null> {
    return this.huey.status(await this.settledId(), { queue: this.queue });
  }

  /** The latest value the task gave `context.progress()`; undefined before any. */
  async progress(): Promise<unknown> {
    return (await this.status())?.progress;
  }

  /**
   * Stop this call from running: it is skipped when a worker picks it up.
   * As in Huey, a call's revocation is used up by the run it skips (the flag
   * is then removed) unless `revokeOnce: false` or `revokeUntil` is given.
   */
  async revoke(options: RevokeOptions = {}): Promise<void> {
    return this.huey.revokeById(await this.settledId(), { revokeOnce: options.revokeUntil === undefined, ...options });
  }

  async restore(): Promise<boolean> {
    return this.huey.restoreById(await this.settledId());
  }

  /** True while this call, or its whole task (when this handle knows which task it is), is revoked. */
  async isRevoked(): Promise<boolean> {
    if (await this.huey.isRevokedId(await this.settledId())) return true;
    return this.message !== undefined && this.huey.isTaskRevoked(this.message.name);
  }

  /**
   * Revoke this run and schedule a copy with a new id (at `delay` or `eta`,
   * now with neither; optionally with a new `expires` or `priority`);
   * resolves to the copy's handle.
   */
  reschedule(options: RescheduleOptions = {}): Promise<Result<T>> {
    return this.huey.reschedule<T>(this.message, options);
  }

  /** True once this handle has read the task's value. */
  get settled(): boolean {
    return this.value !== EMPTY;
  }

  /** Forget a value read earlier, so the next `get()` asks the store again. */
  reset(): void {
    this.value = EMPTY;
  }
}
