// The bench's task for worker processes: `huey-consumer bench/bench-tasks.huey -k process`.
import { RedisHuey } from '../src/index.js';

// Without task records, as scenarios 3a and 3b (3c and 3d measure them).
export const huey = new RedisHuey('bench', { url: process.env.REDIS_URL, records: false });

export const noop = huey.task()(function noop(data: { n: number }) {
  return { ok: data.n };
});

// The bench runs the consumer with -q (no per-task log lines, as BullMQ writes none), so it
// learns that the consumer and each of its worker processes have loaded this module from here.
console.log(`bench module loaded (pid ${process.pid})`);
