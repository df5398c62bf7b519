// The Huey instance, shared by the tasks, the producer and the consumer.
// With no setting it keeps everything in a SQLite file beside this one, so the
// example runs with no server; set REDIS_URL to move the same example to Redis, or
// DATABASE_URL (postgres://...) to move it to PostgreSQL.
import 'reflect-metadata';
import { fileURLToPath } from 'node:url';
import { PostgresHuey, RedisHuey, SqliteHuey } from 'huey-ts';

const name = 'simple-example';

export const huey = process.env.REDIS_URL
  ? new RedisHuey(name, { url: process.env.REDIS_URL })
  : process.env.DATABASE_URL
    ? new PostgresHuey(name, { connectionString: process.env.DATABASE_URL })
    : new SqliteHuey(name, { filename: process.env.HUEY_SQLITE_FILE ?? fileURLToPath(new URL('./huey.db', import.meta.url)) });
