import { RateLimitExceeded } from './errors.js';
import { wrapperAndDecorator } from './around.js';
import type { Storage } from './storage/storage.js';

export interface RateLimitOptions {
  /** How many runs a window allows. */
  limit: number;
  /** The window's length in seconds. */
  per: number;
}

/**
 * A limit on how often something runs, shared by every process on one
 * storage: at most `limit` runs in each window of `per` seconds. Windows are
 * fixed (aligned to multiples of `per` since the epoch) and counted with the
 * storage's atomic increment, so the limit is exact across consumers.
 *
 * A task over its limit is put back in the schedule for the start of the
 * next window, without using a retry, and signalled `rate-limited`. Use it
 * three ways, like a lock:
 * - `await huey.rateLimit('emails', { limit: 10, per: 60 }).run(async () => ...)`
 * - `huey.rateLimit('emails', { limit: 10, per: 60 })(fn)` wraps a function
 * - `@huey.rateLimit('emails', { limit: 10, per: 60 })` on a method (under `@huey.task()`)
 */
export interface RateLimit {
  <F extends (...args: any[]) => any>(fn: F): (...args: Parameters<F>) => Promise<Awaited<ReturnType<F>>>;
  (target: object, propertyKey: string | symbol, descriptor: PropertyDescriptor): void;
  readonly limitName: string;
  readonly options: Readonly<RateLimitOptions>;
  /** Run `fn` if the window has room; otherwise reject with `RateLimitExceeded` (its `retryAt` is the next window). */
  run<T>(fn: () => T | Promise<T>): Promise<T>;
  /** Take one run from the current window, or throw `RateLimitExceeded`. */
  acquire(now?: number): Promise<void>;
}

export function createRateLimit(storage: () => Storage, name: string, options: RateLimitOptions): RateLimit {
  if (!(Number.isInteger(options.limit) && options.limit > 0)) throw new RangeError('a rate limit needs a whole positive `limit`');
  if (!(options.per > 0)) throw new RangeError('a rate limit needs a positive `per` (seconds)');
  const windowMs = options.per * 1000;
  const key = (window: number) => `ratelimit.${name}.${window}`;

  const acquire = async (now = Date.now()): Promise<void> => {
    const window = Math.floor(now / windowMs);
    const count = await storage().increment(key(window));
    // The first run of a window clears the previous window's counter, so at most two exist.
    if (count === 1) await storage().deleteData(key(window - 1));
    if (count > options.limit) {
      throw new RateLimitExceeded(name, new Date((window + 1) * windowMs));
    }
  };
  const run = async <T>(fn: () => T | Promise<T>): Promise<T> => {
    await acquire();
    return fn();
  };

  return Object.assign(wrapperAndDecorator(run) as RateLimit, { limitName: name, options: { ...options }, run, acquire });
}
