import type { GetOptions, Result } from './result.js';

/**
 * The results of several tasks enqueued together: a pipeline's steps, a
 * group's members, or a `task.map()`. Index it, wait for all, or iterate in
 * the order the results arrive.
 */
export class ResultGroup<Rs extends unknown[]> implements AsyncIterable<Rs[number]> {
  /** Resolves once the storage holds every task of the group. */
  readonly enqueued: Promise<this>;

  constructor(
    readonly results: { [K in keyof Rs]: Result<Rs[K]> },
    enqueued: Promise<unknown> = Promise.resolve(),
  ) {
    this.enqueued = enqueued.then(() => this);
  }

  get length(): number {
    return this.results.length;
  }

  /** The handle of the i-th task. */
  at<I extends number>(index: I): Result<Rs[I]> {
    return this.results[index] as Result<Rs[I]>;
  }

  /**
   * Every value, in the group's order; waits for all by default. Rejects with
   * the first `TaskError`, in order (for a pipeline: the step that failed).
   */
  async get(options: GetOptions = { blocking: true }): Promise<Rs> {
    await this.enqueued;
    const values = [];
    for (const result of this.results as Array<Result<unknown>>) values.push(await result.get(options));
    return values as Rs;
  }

  /** Values as they arrive, soonest first; a failed task throws its `TaskError` there. */
  async *[Symbol.asyncIterator](): AsyncIterator<Rs[number]> {
    await this.enqueued;
    const waiting = new Set(this.results as Array<Result<Rs[number]>>);
    let delay = 5;
    while (waiting.size > 0) {
      let found = false;
      for (const result of [...waiting]) {
        const value = await result.get();
        if (value === undefined && !result.settled) continue;
        waiting.delete(result);
        found = true;
        delay = 5;
        yield value as Rs[number];
      }
      if (!found) {
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 1.5, 100);
      }
    }
  }
}
