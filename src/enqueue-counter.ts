import type { Storage } from './storage/storage.js';

/** The storage counter that holds each task's enqueues. */
export const enqueuedKey = (name: string) => `enqueued.${name}`;

/**
 * Counts a producer's enqueues by task name in memory and adds them to the
 * storage's totals once a second (and on close): the dashboard and /metrics
 * read them, and an enqueue costs no extra command.
 */
export class EnqueueCounter {
  private counts = new Map<string, number>();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly storage: () => Storage,
    private readonly onError: (error: unknown) => void,
    private readonly intervalMs = 1000,
  ) {}

  count(name: string, n = 1): void {
    this.counts.set(name, (this.counts.get(name) ?? 0) + n);
    if (!this.timer) {
      // Not kept alive for this: a producer that is done may exit, losing at most a second of counts.
      this.timer = setTimeout(() => void this.flush().catch(this.onError), this.intervalMs);
      this.timer.unref();
    }
  }

  /** Add what was counted to the storage's totals now. */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const counts = this.counts;
    if (counts.size === 0) return;
    this.counts = new Map();
    try {
      await Promise.all([...counts].map(([name, n]) => this.storage().increment(enqueuedKey(name), n)));
    } catch (error) {
      // Kept for the next try rather than dropped.
      for (const [name, n] of counts) this.count(name, n);
      throw error;
    }
  }
}
