import { randomUUID } from 'node:crypto';
import { TaskLockedError } from './errors.js';
import { wrapperAndDecorator } from './around.js';
import type { Storage } from './storage/storage.js';

/** Where locks live in the storage's key/value data, beside results. */
export function lockKey(name: string): string {
  return `lock.${name}`;
}

/**
 * A named mutual-exclusion lock shared by every process on one storage:
 * acquired with put-if-empty (HSETNX on Redis) and released only by the
 * holder, whose random token must still be the stored value.
 *
 * Use it three ways:
 * - `await huey.lockTask('reports').run(async () => ...)`
 * - `huey.lockTask('reports')(fn)` wraps a function
 * - `@huey.lockTask('reports')` on a method
 */
export interface TaskLock {
  /** Wrap a function so each call holds the lock; or, as a decorator, wrap a method. */
  <F extends (...args: any[]) => any>(fn: F): (...args: Parameters<F>) => Promise<Awaited<ReturnType<F>>>;
  (target: object, propertyKey: string | symbol, descriptor: PropertyDescriptor): void;
  readonly lockName: string;
  /** Run `fn` holding the lock; rejects with `TaskLockedError` at once when someone else holds it. */
  run<T>(fn: () => T | Promise<T>): Promise<T>;
  isLocked(): Promise<boolean>;
  /** Take the lock; returns the token to release it with, or throws `TaskLockedError`. */
  acquire(): Promise<string>;
  /** Give the lock back if `token` still holds it; false when it was flushed or taken over meanwhile. */
  release(token: string): Promise<boolean>;
  /** Remove the lock whoever holds it. True when it was held. */
  clear(): Promise<boolean>;
}

export function createTaskLock(storage: () => Storage, name: string): TaskLock {
  const key = lockKey(name);

  const acquire = async (): Promise<string> => {
    const token = randomUUID();
    if (!(await storage().putIfEmpty(key, token))) throw new TaskLockedError(name);
    return token;
  };
  const release = (token: string) => storage().deleteIfEqual(key, token);
  const run = async <T>(fn: () => T | Promise<T>): Promise<T> => {
    const token = await acquire();
    try {
      return await fn();
    } finally {
      await release(token);
    }
  };

  return Object.assign(wrapperAndDecorator(run) as TaskLock, {
    lockName: name,
    run,
    acquire,
    release,
    isLocked: () => storage().hasDataForKey(key),
    clear: () => storage().deleteData(key),
  });
}
