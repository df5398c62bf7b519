import { ConfigurationError } from './errors.js';
import { Huey, type HueyOptions } from './huey.js';
import type { Message } from './message.js';
import { Result } from './result.js';
import { ResultGroup } from './result-group.js';
import { Signature, type Chord, type Group, type Pipeline } from './signature.js';
import { PostgresStorage, type PostgresStorageOptions, type Queryable } from './storage/postgres/postgres-storage.js';
import { MemoryStorage } from './storage/memory.js';
import { SqliteStorage, type SqliteStorageOptions } from './storage/sqlite/sqlite-storage.js';
import { PriorityRedisStorage } from './storage/redis/priority-redis-storage.js';
import { RedisStorage, type RedisStorageOptions } from './storage/redis/redis-storage.js';

/** A Huey on Redis: `new RedisHuey('my-app', { url: 'redis://localhost:6379' })`. */
export class RedisHuey extends Huey {
  constructor(name: string, options: Omit<HueyOptions, 'storage'> & RedisStorageOptions = {}) {
    const { url, clientOptions, sentinel, cluster, onError, ...hueyOptions } = options;
    super(name, { ...hueyOptions, storage: new RedisStorage(name, { url, clientOptions, sentinel, cluster, onError }) });
  }
}

/**
 * A Huey on Redis whose queue honours `priority`: higher runs first, equal
 * priorities first in, first out. Like Huey's PriorityRedisHuey.
 */
export class PriorityRedisHuey extends Huey {
  constructor(name: string, options: Omit<HueyOptions, 'storage'> & RedisStorageOptions = {}) {
    const { url, clientOptions, sentinel, cluster, onError, ...hueyOptions } = options;
    super(name, { ...hueyOptions, storage: new PriorityRedisStorage(name, { url, clientOptions, sentinel, cluster, onError }) });
  }
}

/**
 * A Huey on an embedded SQLite file: no server to run, shared safely by the
 * processes of one machine. `new SqliteHuey('my-app', { filename: 'tasks.db' })`.
 */
export class SqliteHuey extends Huey {
  constructor(name: string, options: Omit<HueyOptions, 'storage'> & SqliteStorageOptions = {}) {
    const { filename, busyTimeout, ...hueyOptions } = options;
    super(name, { ...hueyOptions, storage: new SqliteStorage(name, { filename, busyTimeout }) });
  }
}

/** A Huey in this process's memory: for tests, usually with `{ immediate: true }`. */
export class MemoryHuey extends Huey {
  constructor(name: string, options: Omit<HueyOptions, 'storage'> = {}) {
    super(name, { ...options, storage: new MemoryStorage() });
  }
}

/** The options of a Huey, as opposed to those of its storage. */
const HUEY_OPTIONS = new Set(['serializer', 'immediate', 'results', 'storeNone', 'storeIntermediateErrors', 'resultTtl', 'records', 'recordTtl', 'maxPayloadSize', 'logger']);

/**
 * A Huey on PostgreSQL: `new PostgresHuey('my-app', { connectionString })`;
 * every other option is node-postgres's own (`host`, `ssl`, `max`,
 * `statement_timeout`, ...), plus `schema` (default `huey`). Tables are made
 * and migrated on first connect. `enqueueIn(client, work)` enqueues inside
 * the caller's transaction.
 */
export class PostgresHuey extends Huey {

  constructor(name: string, options: Omit<HueyOptions, 'storage'> & PostgresStorageOptions = {}) {
    const hueyOptions: Record<string, unknown> = {};
    const storageOptions: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(options)) (HUEY_OPTIONS.has(key) ? hueyOptions : storageOptions)[key] = value;
    super(name, { ...(hueyOptions as Omit<HueyOptions, 'storage'>), storage: new PostgresStorage(name, storageOptions as PostgresStorageOptions) });
  }

  /**
   * Enqueue `work` with the caller's own `pg` client, inside the transaction
   * it has open: the tasks (and their records) exist if and only if that
   * transaction commits, and workers are woken by the commit. Resolves to
   * the handles once the rows are written (not yet committed). Signals and
   * enqueue counts are left out: the enqueue is not final until the commit.
   *
   *   await client.query('BEGIN');
   *   await client.query('INSERT INTO orders ...');
   *   const receipt = await huey.enqueueIn(client, sendReceipt.s(orderId));
   *   await client.query('COMMIT');
   */
  enqueueIn<R>(client: Queryable, work: Signature<R>): Promise<Result<R>>;
  enqueueIn<Rs extends unknown[]>(client: Queryable, work: Pipeline<Rs> | Group<Rs>): Promise<ResultGroup<Rs>>;
  enqueueIn<Rs extends unknown[], R, Cs extends unknown[]>(client: Queryable, work: Chord<Rs, R, Cs>): Promise<ResultGroup<[...Rs, ...Cs]>>;
  async enqueueIn(client: Queryable, work: Signature<unknown> | Pipeline<unknown[]> | Group<unknown[]> | Chord<unknown[], unknown, unknown[]>): Promise<unknown> {
    if (this.immediate) throw new ConfigurationError('enqueueIn writes to PostgreSQL in your transaction: it has no immediate mode');
    const { heads, handles } = this.prepare(work);
    for (const { message } of heads) {
      if (message.dedupe || message.dependsOn) throw new ConfigurationError(`task ${message.name}: enqueueIn takes no key and no dependsOn (they read other tasks' state outside your transaction)`);
    }
    const now = Date.now();
    // Each queue's rows go to its own tables, on the caller's client.
    const byStorage = new Map<PostgresStorage, Array<{ message: Message; data: string }>>();
    for (const item of heads) {
      const storage = this.storageOf(item.message);
      if (!(storage instanceof PostgresStorage)) throw new ConfigurationError('enqueueIn needs PostgresStorage for every queue');
      byStorage.set(storage, [...(byStorage.get(storage) ?? []), item]);
    }
    for (const [storage, items] of byStorage) {
      const records = items.flatMap(({ message }) => this.enqueueRecord(message, now) ?? []);
      await storage.enqueueIn(client, items.map(({ message, data }) => ({ data, priority: message.priority, eta: message.eta !== null && message.eta > now ? message.eta : null })), records);
    }
    const results = handles.map((message) => new Result(this, message.id, Promise.resolve(), message));
    return work instanceof Signature ? results[0] : new ResultGroup(results);
  }
}
