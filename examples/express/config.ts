// The Huey instance, shared by the web app and the consumer.
// Set REDIS_URL to run on Redis (as docker-compose does); with no setting it
// keeps everything in a SQLite file beside this one, so the example runs with
// no server at all.
import { fileURLToPath } from 'node:url';
import { RedisHuey, SqliteHuey } from 'huey-ts';

const name = 'express-example';
const options = { resultTtl: 24 * 3600 }; // the app reads results with preserve: true, so let them expire

export const storageName = process.env.REDIS_URL ? 'redis' : 'sqlite';

export const huey = process.env.REDIS_URL
  ? new RedisHuey(name, { url: process.env.REDIS_URL, ...options })
  : new SqliteHuey(name, { filename: process.env.HUEY_SQLITE_FILE ?? fileURLToPath(new URL('./huey.db', import.meta.url)), ...options });
