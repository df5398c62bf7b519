import { Huey, type HueyOptions } from './huey.js';
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
