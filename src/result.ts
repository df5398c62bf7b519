import type { DateTime } from 'luxon';
import { ResultTimeout, StorageError, TaskError } from './errors.js';
import type { Huey, RevokeOptions } from './huey.js';
import type { Message } from './message.js';

export interface GetOptions {
  /** Wait until the result is there. @defaultValue false */
  blocking?: boolean;
  /** Seconds to wait when blocking before rejecting with `ResultTimeout`; none waits for ever. */
  timeout?: number;
  /** Leave the result in the store for another reader. @defaultValue false */
  preserve?: boolean;
}

const EMPTY = Symbol('empty');

/**
 * The handle for one enqueued task: its id, and a way to its result.
 * Results are read once by default (Huey pops them); the value is kept on
 * this object so a second `get()` gives it again.
 */
export class Result<T> {
  private value: T | typeof EMPTY = EMPTY;

  /** Resolves once the storage holds the task; rejects with the storage's error. */
  readonly enqueued: Promise<this>;

  constructor(
    readonly huey: Huey,
    readonly id: string,
    enqueued: Promise<void> = Promise.resolve(),
    /** The message as enqueued, when this handle came from the call itself. */
    readonly message?: Message,
  ) {
    this.enqueued = enqueued.then(() => this);
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
    await this.enqueued;
    const read = async () => {
      try {
        return await this.huey.readResult<T>(this.id, options.preserve ?? false);
      } catch (error) {
        // A blocking wait rides out a storage that is briefly away (a Redis restart).
        if (options.blocking && error instanceof StorageError) return undefined;
        throw error;
      }
    };
    let outcome = await read();
    if (outcome === undefined && options.blocking) {
      const deadline = options.timeout === undefined ? Infinity : Date.now() + options.timeout * 1000;
      let delay = 5;
      while (outcome === undefined) {
        const left = deadline - Date.now();
        if (left <= 0) throw new ResultTimeout(`no result for task ${this.id} within ${options.timeout}s`);
        await new Promise((resolve) => setTimeout(resolve, Math.min(delay, left)));
        delay = Math.min(delay * 1.5, 100);
        outcome = await read();
      }
    }
    if (outcome === undefined) return undefined;
    if ('error' in outcome) throw new TaskError(outcome.error);
    if (!options.preserve) this.value = outcome.value;
    return outcome.value;
  }

  /** Stop this task from running (it is skipped when a worker picks it up). */
  revoke(options: RevokeOptions = {}): Promise<void> {
    return this.huey.revokeById(this.id, options);
  }

  restore(): Promise<boolean> {
    return this.huey.restoreById(this.id);
  }

  isRevoked(): Promise<boolean> {
    return this.huey.isRevokedId(this.id);
  }

  /** Revoke this run and schedule a copy with a new id; resolves to the copy's handle. */
  reschedule(options: { delay?: number; eta?: Date | DateTime } = {}): Promise<Result<T>> {
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
