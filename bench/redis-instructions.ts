// The instructions Redis executes per drained task, counted by valgrind's callgrind: a
// figure that stays the same from run to run whatever else the machine is doing, where
// the timed scenarios swing by a fifth. For comparing changes to the scripts (task
// records, say: RECORDS=1). Redis runs about 50 times slower under callgrind, so the
// drain is small (TOTAL, 4,000 by default).
//   RECORDS=1 node --import tsx bench/redis-instructions.ts [concurrency=50]
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Consumer } from '../src/consumer/consumer.js';
import { RedisHuey } from '../src/index.js';
import { freePort } from '../test/support/redis-server.js';

const concurrency = Number(process.argv[2] ?? 50);
const total = Number(process.env.TOTAL ?? 4000);
const records = process.env.RECORDS === '1';

const dir = mkdtempSync(join(tmpdir(), 'huey-callgrind-'));
const port = await freePort();
const server = spawn('valgrind', ['--tool=callgrind', `--callgrind-out-file=${join(dir, 'out')}`, 'redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
const callgrind = (command: '-z' | '-d') => execFileSync('callgrind_control', [command, String(server.pid)], { stdio: 'ignore' });

try {
  // A client that fails its first connect keeps reconnecting on its own; ask with redis-cli until the server answers.
  const deadline = Date.now() + 60_000;
  while (!pong(port)) {
    if (Date.now() > deadline) throw new Error('redis-server under valgrind did not start within 60 s');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const url = `redis://127.0.0.1:${port}`;
  const huey = new RedisHuey('instructions', { url, records });
  let done = 0;
  huey.signal('complete')(() => void done++);
  const noop = huey.task()(function noop(data: { n: number }) {
    return { ok: data.n };
  });
  await noop.map(Array.from({ length: total }, (_, n) => [{ n, text: 'hello', tags: ['a', 'b'] }] as [{ n: number; text: string; tags: string[] }])).enqueued;

  // Count the drain alone: from the consumer's start to its last result.
  callgrind('-z');
  const consumer = new Consumer(huey, { workers: concurrency, periodic: false });
  await consumer.start();
  while (done < total) await new Promise((resolve) => setTimeout(resolve, 5));
  callgrind('-d');
  await consumer.stop({ graceful: true });
  await huey.close();

  const counted = readdirSync(dir)
    .filter((file) => file !== 'out')
    .map((file) => Number(/^(?:summary|totals): (\d+)/m.exec(readFileSync(join(dir, file), 'utf8'))?.[1] ?? 0));
  console.log(`records ${records ? 'on' : 'off'}, concurrency ${concurrency}: ${Math.round(Math.max(...counted) / total).toLocaleString('en-US')} Redis instructions per task`);
} finally {
  server.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}

function pong(port: number): boolean {
  try {
    return execFileSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).includes('PONG');
  } catch {
    return false;
  }
}
