// Soak: push many tasks through 4 process workers while killing workers at
// random and restarting Redis (persistent), then count what happened to each.
//   npm run soak -- [tasks=100000]
// Not part of CI: it takes minutes and a lot of fsyncs.
import { execFileSync } from 'node:child_process';
import { createClient } from '@redis/client';
import { startRedis } from '../test/support/redis-server.js';
import { startConsumer } from '../test/support/processes.js';

const total = Number(process.argv[2] ?? 100_000);
const redis = await startRedis({ persistent: true });
process.env.REDIS_URL = redis.url;
const { huey, mark, RUNS_KEY } = await import('./soak-tasks.js');

const consumer = startConsumer(['bench/soak-tasks.huey', '-w', '4', '-k', 'process', '-c', '1', '--lease', '3', '-q'], { REDIS_URL: redis.url });
await consumer.waitFor(/thread|process|consumer/i, 30_000).catch(() => undefined);

let killedWorkers = 0;
let redisRestarts = 0;
let stopChaos = false;
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function chaos(): Promise<void> {
  let round = 0;
  while (!stopChaos) {
    await pause(1000 + Math.random() * 2000);
    if (stopChaos) break;
    round++;
    if (round % 8 === 0) {
      await redis.stop(true);
      await pause(500);
      await redis.restart();
      redisRestarts++;
      continue;
    }
    const pids = execFileSync('pgrep', ['-P', String(consumer.child.pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
    if (pids.length === 0) continue;
    process.kill(Number(pids[Math.floor(Math.random() * pids.length)]), 'SIGKILL');
    killedWorkers++;
  }
}

const chaosDone = chaos();
const started = Date.now();
let accepted = 0;
let refused = 0;
const batch = 500;
for (let from = 0; from < total; from += batch) {
  const ids = Array.from({ length: Math.min(batch, total - from) }, (_, k) => from + k);
  // An enqueue refused during an outage is the producer's to retry: it was never accepted.
  let pending = ids;
  while (pending.length > 0) {
    const outcomes = await Promise.allSettled(pending.map((i) => mark.enqueue(i)));
    const again: number[] = [];
    outcomes.forEach((outcome, k) => (outcome.status === 'fulfilled' ? accepted++ : (refused++, again.push(pending[k]!))));
    pending = again;
    if (pending.length > 0) await pause(200);
  }
}
const enqueueSeconds = (Date.now() - started) / 1000;

// Drain: wait until nothing is queued, scheduled or claimed for a while.
const probe = createClient({ url: redis.url });
probe.on('error', () => {});
await probe.connect();
let quietSince = 0;
for (;;) {
  await pause(1000);
  let busy = true;
  try {
    const pendingCount = await huey.pendingCount();
    const scheduledCount = await huey.scheduledCount();
    const claimed = (await probe.keys('huey.{soak}.claimed.*')).length;
    busy = pendingCount + scheduledCount + claimed > 0;
  } catch {
    busy = true;
  }
  if (busy) quietSince = 0;
  else if (!quietSince) {
    quietSince = Date.now();
    stopChaos = true;
  } else if (Date.now() - quietSince > 5000) break;
}
await chaosDone;
const seconds = (Date.now() - started) / 1000;

const runs = await probe.hGetAll(RUNS_KEY);
const results = await probe.hGetAll('huey.{soak}.results');
let completed = 0;
let twice = 0;
let failed = 0;
for (let i = 0; i < total; i++) {
  const n = Number(runs[String(i)] ?? 0);
  const outcome = results[String(i)] ?? '';
  if (outcome.includes('"error"')) failed++;
  else if (n >= 1) completed++;
  if (n >= 2) twice++;
}
const lost = accepted - completed - failed;
consumer.child.kill('SIGTERM');
await consumer.exited();
await probe.close();
await huey.close();
await redis.close();

console.log(`tasks accepted      ${accepted} (${refused} enqueue attempts refused during outages, retried by the producer)`);
console.log(`completed           ${completed}`);
console.log(`failed visibly      ${failed}`);
console.log(`run twice or more   ${twice}`);
console.log(`lost                ${lost}`);
console.log(`workers killed      ${killedWorkers}; Redis restarts ${redisRestarts}`);
console.log(`time                ${seconds.toFixed(1)} s (enqueue ${enqueueSeconds.toFixed(1)} s)`);
process.exit(lost === 0 ? 0 : 1);
