// The soak test's task: it counts its own runs in Redis, so the soak can tell
// a task run twice from one run once or never.
import { createClient } from '@redis/client';
import { RedisHuey } from '../src/index.js';

export const huey = new RedisHuey('soak', { url: process.env.REDIS_URL });

const counter = createClient({ url: process.env.REDIS_URL, disableOfflineQueue: true });
counter.on('error', () => {}); // reconnects by itself; a failed count fails the run, which is retried
const connected = counter.connect();

export const RUNS_KEY = 'soak.runs';

export const mark = huey.task({ retries: 10 })(async function mark(i: number) {
  await connected;
  await counter.hIncrBy(RUNS_KEY, String(i), 1);
  return i;
});
