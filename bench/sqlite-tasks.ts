// The bench's task on the embedded default: `huey-consumer bench/sqlite-tasks.huey` on a SQLite file.
import { SqliteHuey } from '../src/index.js';

export const huey = new SqliteHuey('bench-sqlite', { filename: process.env.HUEY_SQLITE_FILE });

/** When the run started, in ms since the epoch with sub-millisecond precision. */
export const stamp = huey.task()(function stamp() {
  return performance.timeOrigin + performance.now();
});

console.log(`bench module loaded (pid ${process.pid})`);
