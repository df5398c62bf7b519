// One huey-ts drain of 20,000 no-op tasks on its own, optionally profiled (CPU, or
// sampled allocations when the file ends in .heapprofile); open the file in Chrome DevTools.
// Prints Redis's busy share, the CPU each side spent per task (Node's includes its GC
// threads), the commands per task and the event loop's use. RECORDS=1 keeps task records;
// TOTAL=100000 drains more tasks, for steadier figures on a busy machine.
//   node --import tsx bench/profile-drain.ts [concurrency=50] [out.cpuprofile | out.heapprofile]
import { createClient } from '@redis/client';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { performance } from 'node:perf_hooks';
import { RedisHuey } from '../src/index.js';
import { Consumer } from '../src/consumer/consumer.js';
import { startRedis } from '../test/support/redis-server.js';

const concurrency = Number(process.argv[2] ?? 50);
const redis = await startRedis();
const huey = new RedisHuey('profile', { url: redis.url, records: process.env.RECORDS === '1' });
let done = 0;
huey.signal('complete')(() => void done++);
const noop = huey.task()(function noop(data: { n: number }) {
  return { ok: data.n };
});
const total = Number(process.env.TOTAL ?? 20_000);
await noop.map(Array.from({ length: total }, (_, n) => [{ n, text: 'hello', tags: ['a', 'b'] }] as [{ n: number; text: string; tags: string[] }])).enqueued;
const admin = createClient({ url: redis.url });
await admin.connect();
const cpu = async () => {
  const info = await admin.info('cpu');
  return Number(/used_cpu_user:([\d.]+)/.exec(info)![1]) + Number(/used_cpu_sys:([\d.]+)/.exec(info)![1]);
};
const cpuBefore = await cpu();
await admin.configResetStat();
const consumer = new Consumer(huey, { workers: concurrency, periodic: false, prefetchWindow: Number(process.env.WINDOW ?? 0.01) });
const session = new Session();
session.connect();
const out = process.argv[3];
const heap = out?.endsWith('.heapprofile');
if (heap) {
  await session.post('HeapProfiler.enable');
  await session.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
} else if (out) {
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
}
const cpuNode = process.cpuUsage();
const elu0 = performance.eventLoopUtilization();
const started = performance.now();
await consumer.start();
while (done < total) await new Promise((resolve) => setTimeout(resolve, 5));
const elapsed = (performance.now() - started) / 1000;
if (out) {
  const { profile } = heap ? await session.post('HeapProfiler.stopSampling') : await session.post('Profiler.stop');
  writeFileSync(out, JSON.stringify(profile));
}
const nodeUs = process.cpuUsage(cpuNode);
const redisUs = ((await cpu()) - cpuBefore) * 1e6;
console.log(`redis busy ${((redisUs / 1e6) / elapsed * 100).toFixed(0)}% of the run; cpu per task: node ${((nodeUs.user + nodeUs.system) / total).toFixed(1)} µs, redis ${(redisUs / total).toFixed(1)} µs`);
const calls = [...(await admin.info('commandstats')).matchAll(/cmdstat_([a-z|]+):calls=(\d+)/g)].filter((m) => !['info', 'config|resetstat', 'blmove'].includes(m[1]!));
console.log(`${(calls.reduce((sum, m) => sum + Number(m[2]), 0) / total).toFixed(2)} commands per task: ${calls.map((m) => `${m[1]} ${m[2]}`).join(', ')}`);
console.log(`event loop busy ${(performance.eventLoopUtilization(elu0).utilization * 100).toFixed(0)}% of the run`);
console.log(`${Math.round(total / ((performance.now() - started) / 1000))} tasks/s at concurrency ${concurrency}`);
await consumer.stop({ graceful: true });
await huey.close();
await admin.close();
await redis.close();
