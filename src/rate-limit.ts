import { RateLimitExceeded } from './errors.js';
import { wrapperAndDecorator } from './around.js';
import type { Storage } from './storage/storage.js';

export interface RateLimitOptions {
  /** How many runs a window allows. */
  limit: number;
  /** The window's length in seconds. */
  per: number;
  /**
   * What a task over the limit does. True: it runs again at the start of the
   * next window, without using a retry. False: the run fails with
   * `RateLimitExceeded` as with any error, so it uses a retry if it has one
   * left and otherwise fails for good with that error stored.
   * @defaultValue true
   */
  retry?: boolean;
}

/**
 * A limit on how often something runs, shared by every process on one
 * storage: at most `limit` runs in each window of `per` seconds. Windows are
 * fixed (aligned to multiples of `per` since the epoch) and counted with the
 * storage's atomic increment, so the limit is exact across consumers.
 *
 * A task over its limit is signalled `rate-limited`, then put back in the
 * schedule for the start of the next window without using a retry, or, with
 * `retry: false`, fails as with any error. Use it three ways, like a lock:
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
  /** Clear the current window's count: the full `limit` is free again until the window ends. */
  reset(now?: number): Promise<void>;
  /** How many runs the current window has let through, at most `limit` (tries over it are not counted). */
  currentUsage(now?: number): Promise<number>;
}

/** The storage counter of one window of a rate limit. */
const rateLimitKey = (name: string, window: number) => `ratelimit.${name}.${window}`;

export function createRateLimit(storage: () => Storage, name: string, options: RateLimitOptions): RateLimit {
  if (!(Number.isInteger(options.limit) && options.limit > 0)) throw new RangeError('a rate limit needs a whole positive `limit`');
  if (!(options.per > 0)) throw new RangeError('a rate limit needs a positive `per` (seconds)');
  const windowMs = options.per * 1000;
  const retry = options.retry ?? true;
  const windowOf = (now: number) => Math.floor(now / windowMs);
  const key = (window: number) => rateLimitKey(name, window);

  const acquire = async (now = Date.now()): Promise<void> => {
    const window = windowOf(now);
    const count = await storage().increment(key(window));
    // The first run of a window clears the previous window's counter, so at most two exist.
    if (count === 1) await storage().deleteCounter(key(window - 1));
    if (count > options.limit) {
      throw new RateLimitExceeded(name, new Date((window + 1) * windowMs), retry);
    }
  };
  const reset = async (now = Date.now()): Promise<void> => {
    await storage().deleteCounter(key(windowOf(now)));
  };
  const currentUsage = async (now = Date.now()): Promise<number> => {
    const current = key(windowOf(now));
    // Every try counts towards the window's counter, those refused too.
    return Math.min((await storage().counters(current))[current] ?? 0, options.limit);
  };
  const run = async <T>(fn: () => T | Promise<T>): Promise<T> => {
    await acquire();
    return fn();
  };

  return Object.assign(wrapperAndDecorator(run) as RateLimit, { limitName: name, options: { ...options, retry }, run, acquire, reset, currentUsage });
}
