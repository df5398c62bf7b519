// Named queues and Redis Cluster, huey-ts and BullMQ side by side: run by
// bench/bench.ts after its own scenarios, into a second table.
//   9.  three queues (critical, default, bulk), one consumer: tasks/s, and
//       whether every critical task finished before the first bulk one.
//   10. a queue of 3 shards drained on the bench's single Redis (10a) and on a
//       3-master, 3-replica local cluster (10b) the bench starts once.
import { performance } from 'node:perf_hooks';
import { Queue, Worker as BullWorker } from 'bullmq';
import { Cluster as IOCluster, Redis as IORedis } from 'ioredis';
import { RedisHuey } from '../src/index.js';
import { Consumer } from '../src/consumer/consumer.js';
import { startCluster, type TestCluster } from '../test/support/redis-cluster.js';
import { ask } from '../test/support/redis-server.js';

export type Which = 'huey' | 'bull';

/** What a scenario of this file runs against: the bench's own Redis, and the cluster when one is needed. */
export interface QueueEnv {
  redisUrl: string;
  /** The bench's 3-master cluster, started on first use and kept for every round. */
  cluster(): Promise<TestCluster>;
}

export interface QueueScenario {
  name: string;
  unit: string;
  higherIsBetter: boolean;
  /** One measurement of one side; NaN when that side cannot run it. */
  run(which: Which, env: QueueEnv): Promise<number>;
}

const SIZES = { perQueue: 6000, sharded: 20_000 };
const QUEUES = ['critical', 'default', 'bulk'] as const;
/** The longest a drain may take before the run is given up. */
const DRAIN_TIMEOUT_MS = 300_000;

const payload = (n: number) => ({ n, text: 'hello', tags: ['a', 'b'] });
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + DRAIN_TIMEOUT_MS;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/**
 * BENCH_ONLY=3,10 picks the scenarios whose names start with one of those
 * prefixes, a number prefix standing for that number only: `1` picks
 * "1. ..." but not "10a. ...", `10` picks 10a and 10b, `10a` only 10a.
 */
export function picked(name: string, only: readonly string[] | undefined): boolean {
  if (!only) return true;
  return only.some((prefix) => name.startsWith(prefix) && !(/\d$/.test(prefix) && /^\d/.test(name.slice(prefix.length))));
}

// ---- 9. three queues, one consumer ----

/** Completion order of one run of scenario 9: did critical finish before bulk began to finish? */
interface Order {
  held: boolean;
  /** Bulk tasks that completed before the last critical one did. */
  bulkBeforeLastCritical: number;
  lastCritical: number;
  firstBulk: number;
}
const orders: Record<Which, Order[]> = { huey: [], bull: [] };

/** Completion indexes by queue, folded into an Order. */
function tracker() {
  let index = 0;
  const done: Record<string, number[]> = { critical: [], default: [], bulk: [] };
  return {
    complete(queue: string) {
      (done[queue] ??= []).push(index++);
    },
    count: () => index,
    order(): Order {
      const lastCritical = Math.max(...done.critical!);
      const firstBulk = Math.min(...done.bulk!);
      return { held: lastCritical < firstBulk, bulkBeforeLastCritical: done.bulk!.filter((i) => i < lastCritical).length, lastCritical, firstBulk };
    },
  };
}

async function threeQueuesHuey(env: QueueEnv): Promise<number> {
  const huey = new RedisHuey(`bench-q-${Date.now()}`, { url: env.redisUrl });
  for (const queue of QUEUES) huey.queue(queue);
  const track = tracker();
  huey.signal('complete')((_signal, task) => track.complete(task.queue));
  const tasks = Object.fromEntries(
    QUEUES.map((queue) => [queue, huey.task({ queue, name: `noop-${queue}` })((data: { n: number }) => ({ ok: data.n }))]),
  );
  let consumer: Consumer | undefined;
  try {
    // Lowest priority first, so the order the consumer keeps is not the order they were written in.
    for (const queue of ['bulk', 'default', 'critical'] as const) {
      await tasks[queue]!.map(range(SIZES.perQueue).map((n) => [payload(n)] as [ReturnType<typeof payload>])).enqueued;
    }
    const total = SIZES.perQueue * QUEUES.length;
    const started = performance.now();
    consumer = new Consumer(huey, { workers: 50, queues: ['critical', 'default', 'bulk'], periodic: false });
    await consumer.start();
    await until(() => track.count() >= total, `${total} huey-ts completions`);
    const seconds = (performance.now() - started) / 1000;
    orders.huey.push(track.order());
    return total / seconds;
  } finally {
    await consumer?.stop();
    await huey.flush();
    await huey.close();
  }
}

async function threeQueuesBull(env: QueueEnv): Promise<number> {
  const connection = new IORedis(env.redisUrl, { maxRetriesPerRequest: null });
  const queues = QUEUES.map((name) => new Queue(name, { connection }));
  const track = tracker();
  const workers: BullWorker[] = [];
  try {
    for (const name of ['bulk', 'default', 'critical'] as const) {
      const queue = queues[QUEUES.indexOf(name)]!;
      await queue.addBulk(range(SIZES.perQueue).map((n) => ({ name: 'noop', data: payload(n) })));
    }
    const total = SIZES.perQueue * QUEUES.length;
    const started = performance.now();
    // BullMQ's way to serve several queues: a Worker for each, all in this process.
    for (const name of QUEUES) {
      const worker = new BullWorker(name, async (job) => ({ ok: job.data.n }), {
        connection: new IORedis(env.redisUrl, { maxRetriesPerRequest: null }),
        concurrency: 50,
      });
      worker.on('completed', () => track.complete(name));
      workers.push(worker);
    }
    await Promise.all(workers.map((worker) => worker.waitUntilReady()));
    await until(() => track.count() >= total, `${total} BullMQ completions`);
    const seconds = (performance.now() - started) / 1000;
    orders.bull.push(track.order());
    return total / seconds;
  } finally {
    await Promise.all(workers.map((worker) => worker.close()));
    await Promise.all(queues.map((queue) => queue.close()));
    connection.disconnect();
  }
}

// ---- 10. a sharded queue, single Redis and cluster ----

/** An instance name whose shard hash tags `{name:events}`, `{name:events#1}`, `{name:events#2}` sit on three different masters. */
async function spreadName(cluster: TestCluster, prefix: string, queues: string[]): Promise<string> {
  for (let i = 0; i < 500; i++) {
    const name = `${prefix}-${i}`;
    const masters = new Set<number | null>();
    for (const queue of queues) masters.add(await cluster.masterOfSlot(await cluster.keySlot(`huey.{${name}:${queue}}.queue`)));
    if (masters.size === queues.length && !masters.has(null)) return name;
  }
  throw new Error('no name spreads the shards over the masters');
}

let clusterName: string | undefined;

async function shardedHuey(env: QueueEnv, where: 'single' | 'cluster'): Promise<number> {
  let huey: RedisHuey;
  if (where === 'cluster') {
    const cluster = await env.cluster();
    clusterName ??= await spreadName(cluster, 'bench-sharded', ['events', 'events#1', 'events#2']);
    huey = new RedisHuey(clusterName, { cluster: { rootNodes: cluster.rootNodes } });
  } else {
    huey = new RedisHuey(`bench-sharded-${Date.now()}`, { url: env.redisUrl });
  }
  huey.queue('events', { shards: 3 });
  let done = 0;
  huey.signal('complete')(() => void done++);
  const event = huey.task({ queue: 'events' })(function event(data: { n: number }) {
    return { ok: data.n };
  });
  let consumer: Consumer | undefined;
  try {
    await event.map(range(SIZES.sharded).map((n) => [payload(n)] as [ReturnType<typeof payload>])).enqueued;
    const started = performance.now();
    consumer = new Consumer(huey, { workers: 50, queues: ['events'], periodic: false });
    await consumer.start();
    await until(() => done >= SIZES.sharded, `${SIZES.sharded} huey-ts completions`);
    return SIZES.sharded / ((performance.now() - started) / 1000);
  } finally {
    await consumer?.stop();
    await huey.flush();
    await huey.close();
  }
}

/** Why BullMQ could not run on the cluster, when it could not. */
let bullClusterFailure: string | undefined;

async function shardedBull(env: QueueEnv, where: 'single' | 'cluster'): Promise<number> {
  let connect: () => IORedis | IOCluster;
  let prefix: string | undefined;
  if (where === 'cluster') {
    const cluster = await env.cluster();
    const startup = cluster.nodes.map((node) => ({ host: '127.0.0.1', port: node.port }));
    connect = () => new IOCluster(startup, { redisOptions: { maxRetriesPerRequest: null } });
    // A hash tag in the prefix puts every key of the queue in one slot: BullMQ's scripts need that.
    prefix = '{bench}';
  } else {
    connect = () => new IORedis(env.redisUrl, { maxRetriesPerRequest: null });
  }
  const connection = connect();
  const queue = new Queue('events', { connection, ...(prefix ? { prefix } : {}) });
  let worker: BullWorker | undefined;
  let done = 0;
  try {
    await queue.addBulk(range(SIZES.sharded).map((n) => ({ name: 'event', data: payload(n) })));
    const started = performance.now();
    worker = new BullWorker('events', async (job) => ({ ok: job.data.n }), { connection: connect(), concurrency: 50, ...(prefix ? { prefix } : {}) });
    worker.on('completed', () => void done++);
    await worker.waitUntilReady();
    await until(() => done >= SIZES.sharded, `${SIZES.sharded} BullMQ completions`);
    return SIZES.sharded / ((performance.now() - started) / 1000);
  } catch (error) {
    if (where !== 'cluster') throw error;
    bullClusterFailure = error instanceof Error ? error.message : String(error);
    return NaN;
  } finally {
    await worker?.close().catch(() => undefined);
    await queue.close().catch(() => undefined);
    connection.disconnect();
  }
}

export const queueScenarios: QueueScenario[] = [
  {
    name: '9. three queues × 6,000, one consumer × 50 (BullMQ: a Worker × 50 per queue)',
    unit: 'tasks/s',
    higherIsBetter: true,
    run: (which, env) => (which === 'huey' ? threeQueuesHuey(env) : threeQueuesBull(env)),
  },
  {
    name: '10a. drain 20,000, queue of 3 shards, single Redis (BullMQ: one queue), concurrency 50',
    unit: 'tasks/s',
    higherIsBetter: true,
    run: (which, env) => (which === 'huey' ? shardedHuey(env, 'single') : shardedBull(env, 'single')),
  },
  {
    name: '10b. drain 20,000, queue of 3 shards, 3-master cluster (BullMQ: one queue, one slot), concurrency 50',
    unit: 'tasks/s',
    higherIsBetter: true,
    run: (which, env) => (which === 'huey' ? shardedHuey(env, 'cluster') : shardedBull(env, 'cluster')),
  },
];

/**
 * Run the chosen scenarios of this file for `rounds` rounds, alternating which
 * side goes first; `flush` empties the bench's single Redis before each run.
 * The cluster is started once, on first use, and closed before this returns.
 */
export async function runQueueScenarios(
  chosen: readonly QueueScenario[],
  rounds: number,
  redisUrl: string,
  flush: () => Promise<void>,
): Promise<Map<string, Record<Which, number[]>>> {
  const results = new Map<string, Record<Which, number[]>>();
  let started: Promise<TestCluster> | undefined;
  const env: QueueEnv = { redisUrl, cluster: () => (started ??= startCluster()) };
  const flushCluster = async () => {
    if (!started) return;
    // Every node of the bench's own cluster; a replica refuses (READONLY) and follows its master.
    for (const node of (await started).nodes) await ask(node.port, (client) => client.sendCommand(['FLUSHALL'])).catch(() => undefined);
  };
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const scenario of chosen) {
        const entry = results.get(scenario.name) ?? { huey: [], bull: [] };
        const order = round % 2 === 1 ? (['huey', 'bull'] as const) : (['bull', 'huey'] as const);
        for (const which of order) {
          await flush();
          await flushCluster();
          entry[which].push(await scenario.run(which, env));
        }
        results.set(scenario.name, entry);
        process.stderr.write(`round ${round}: ${scenario.name} done\n`);
      }
    }
  } finally {
    if (started) await (await started).close();
  }
  return results;
}

/** The lines under the second table: the order scenario 9 kept, and what kept BullMQ off the cluster. */
export function queueNotes(): string[] {
  const lines: string[] = [];
  const describe = (which: Which, label: string) => {
    const runs = orders[which];
    if (runs.length === 0) return;
    const held = runs.filter((run) => run.held).length;
    const worst = Math.max(...runs.map((run) => run.bulkBeforeLastCritical));
    lines.push(
      held === runs.length
        ? `${label} kept the order in ${held} of ${runs.length} runs: every critical task completed before the first bulk one.`
        : `${label} kept the order in ${held} of ${runs.length} runs: up to ${worst.toLocaleString('en-US')} bulk tasks completed before the last critical one.`,
    );
  };
  describe('huey', 'Order (9): huey-ts');
  describe('bull', 'Order (9): BullMQ');
  if (bullClusterFailure) lines.push(`BullMQ could not run on the cluster (10b): ${bullClusterFailure}`);
  // A paragraph each.
  return lines.flatMap((line, i) => (i === 0 ? [line] : ['', line]));
}
