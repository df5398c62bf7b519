import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { MemoryStorage, PostgresStorage, PriorityRedisStorage, RedisStorage, SqliteStorage, type Storage } from '../../src/index.js';
import { startPostgres, type TestPostgres } from './postgres-server.js';
import { startRedis, type TestRedis } from './redis-server.js';

/**
 * A redis-server, a PostgreSQL server and a temporary directory of the
 * calling test file's own, started before its tests and removed after them,
 * with a fresh storage of each kind on them: for the tests that run one
 * behaviour on every storage.
 */
export function testStorages(name: string) {
  const dir = mkdtempSync(join(tmpdir(), `huey-${name}-`));
  let redis: TestRedis | undefined;
  let postgres: TestPostgres | undefined;
  let instances = 0;
  before(async () => {
    [redis, postgres] = await Promise.all([startRedis(), startPostgres()]);
  });
  after(async () => {
    await Promise.all([redis?.close(), postgres?.close()]);
    rmSync(dir, { recursive: true, force: true });
  });
  const started = (): TestRedis => {
    if (!redis) throw new Error('the test Redis starts before the tests');
    return redis;
  };
  /** A name no other instance of this file has. */
  const fresh = () => `${name}${++instances}`;
  const kinds: Record<'memory' | 'sqlite' | 'redis' | 'priority redis' | 'postgres', () => Storage> = {
    memory: () => new MemoryStorage(),
    sqlite: () => new SqliteStorage(fresh(), { filename: join(dir, `${name}.db`) }),
    redis: () => new RedisStorage(fresh(), { url: started().url }),
    'priority redis': () => new PriorityRedisStorage(fresh(), { url: started().url }),
    postgres: () => {
      if (!postgres) throw new Error('the test PostgreSQL starts before the tests');
      return new PostgresStorage(fresh(), { connectionString: postgres.url });
    },
  };
  return { dir, kinds, fresh, redis: started };
}
