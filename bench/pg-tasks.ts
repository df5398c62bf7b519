// The PostgreSQL bench's task for worker processes: `huey-consumer bench/pg-tasks.huey -w 4 -k process`.
import { PostgresHuey } from '../src/index.js';

export const huey = new PostgresHuey('bench', { connectionString: process.env.DATABASE_URL });

export const noop = huey.task()(function noop(data: { n: number }) {
  return { ok: data.n };
});

console.log(`bench module loaded (pid ${process.pid})`);
