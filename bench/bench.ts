// huey-ts and BullMQ side by side on one redis-server of the bench's own
// (persistence off), scenario by scenario, alternating, several rounds;
// prints medians and the ratio huey-ts / BullMQ, and writes bench/RESULTS.md.
// Then the named-queue and Redis Cluster scenarios of bench/queues.ts, into a
// second table.
//   npm run bench -- [rounds=3]
//   BENCH_ONLY=3,10 npm run bench -- 1   (only scenarios 3a-3d, 10a, 10b)
// Then PostgresHuey, graphile-worker and pg-boss on a PostgreSQL of its own (bench/postgres.ts, scenarios 11).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpus, tmpdir } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Queue, Worker as BullWorker } from 'bullmq';
import { Redis as IORedis } from 'ioredis';
import { createClient } from '@redis/client';
import { RedisHuey, SqliteHuey } from '../src/index.js';
import { Consumer } from '../src/consumer/consumer.js';
import { Spawned, startConsumer } from '../test/support/processes.js';
import { startRedis } from '../test/support/redis-server.js';
import { picked, queueNotes, queueScenarios, runQueueScenarios } from './queues.js';
import { runPostgresBench } from './postgres.js';

const ROUNDS = Number(process.argv[2] ?? 3);
const SIZES = { one: 3000, bulk: 10_000, drain: 20_000, latency: 300, backlog: 10_000, memory: 10_000 };

const redis = await startRedis();
const admin = createClient({ url: redis.url });
await admin.connect();
const payload = (n: number) => ({ n, text: 'hello', tags: ['a', 'b'] });

/** One library under test: how to enqueue, how to run workers, how to wait for N completions. */
interface Side {
  name: string;
  /**
   * Start workers outside the bench's process, ready to take work (huey-ts:
   * one consumer with 4 process or thread workers, or one async worker;
   * BullMQ: 4 worker processes at its usual concurrency, or one at
   * concurrency 1); resolves to a function that stops them.
   */
  startProcesses(kind: 'process' | 'thread' | 'async'): Promise<() => Promise<void>>;
  /**
   * Start one consumer process with `slots` async slots (huey-ts: `-w slots`;
   * BullMQ: one worker process at that concurrency), ready and idle; resolves
   * to its pid and a function that stops it.
   */
  startIdle(slots: number): Promise<{ pid: number; stop: () => Promise<void> }>;
  /** Tasks finished by any process, read from Redis. */
  finishedInRedis(): Promise<number>;
  enqueueOne(n: number): Promise<void>;
  enqueueBulk(ns: number[]): Promise<void>;
  startWorkers(concurrency: number): Promise<void>;
  stopWorkers(): Promise<void>;
  completed(): number;
  close(): Promise<void>;
}

const starts = new Map<number, number>();

function hueySide(records: boolean): Side {
  const huey = new RedisHuey('bench', { url: redis.url, records });
  let done = 0;
  huey.signal('complete')(() => void done++);
  const noop = huey.task()(function noop(data: { n: number }) {
    starts.set(data.n, performance.now());
    return { ok: data.n };
  });
  let consumer: Consumer | undefined;
  return {
    name: 'huey-ts',
    startProcesses: async (kind) => {
      const workers = kind === 'async' ? ['-w', '1'] : ['-w', '4', '-k', kind];
      const consumer = startConsumer(['bench/bench-tasks.huey', ...workers, '-q'], { REDIS_URL: redis.url });
      // The consumer process and each thread or process worker load the module once.
      const loads = kind === 'async' ? 1 : 5;
      await until(() => (consumer.output.match(/bench module loaded/g) ?? []).length >= loads || consumer.child.exitCode !== null, true);
      if (consumer.child.exitCode !== null) throw new Error(`consumer exited:\n${consumer.output}`);
      return async () => {
        consumer.child.kill('SIGTERM');
        await consumer.exited();
      };
    },
    startIdle: async (slots) => {
      const consumer = startConsumer(['bench/bench-tasks.huey', '-w', String(slots), '-q', '-n'], { REDIS_URL: redis.url });
      await consumer.waitFor(/bench module loaded/, 30_000);
      await consumer.waitFor(/consumer running/, 30_000).catch(() => undefined);
      return { pid: consumer.child.pid!, stop: async () => void (consumer.child.kill('SIGTERM'), await consumer.exited()) };
    },
    finishedInRedis: () => huey.storage.resultStoreSize(),
    enqueueOne: async (n) => void (await noop.enqueue(payload(n))),
    enqueueBulk: async (ns) => void (await noop.map(ns.map((n) => [payload(n)] as [ReturnType<typeof payload>])).enqueued),
    startWorkers: async (concurrency) => {
      consumer = new Consumer(huey, { workers: concurrency, periodic: false, prefetchWindow: 0.05 });
      await consumer.start();
      await huey.connect();
    },
    stopWorkers: async () => {
      await consumer?.stop({ graceful: true });
      consumer = undefined;
      await huey.connect();
    },
    completed: () => done,
    close: () => huey.close(),
  };
}

function bullSide(): Side {
  const connection = new IORedis(redis.url, { maxRetriesPerRequest: null });
  const queue = new Queue('bench', { connection });
  let done = 0;
  let worker: BullWorker | undefined;
  return {
    name: 'BullMQ',
    startProcesses: async (kind) => {
      // One loop at concurrency 1 for huey-ts's one async worker, as in 3a; otherwise 4 processes at BullMQ's usual 50.
      const env = kind === 'async' ? { REDIS_URL: redis.url, BULL_CONCURRENCY: '1' } : { REDIS_URL: redis.url };
      const workers = Array.from({ length: kind === 'async' ? 1 : 4 }, () => new Spawned(process.execPath, ['--import', 'tsx', 'bench/bull-worker.ts'], env));
      await Promise.all(workers.map((w) => w.waitFor(/ready/, 30_000)));
      return async () => {
        await Promise.all(workers.map((w) => (w.child.kill('SIGTERM'), w.exited())));
      };
    },
    startIdle: async (slots) => {
      const worker = new Spawned(process.execPath, ['--import', 'tsx', 'bench/bull-worker.ts'], { REDIS_URL: redis.url, BULL_CONCURRENCY: String(slots) });
      await worker.waitFor(/ready/, 30_000);
      return { pid: worker.child.pid!, stop: async () => void (worker.child.kill('SIGTERM'), await worker.exited()) };
    },
    finishedInRedis: async () => (await queue.getJobCounts('completed')).completed ?? 0,
    enqueueOne: async (n) => void (await queue.add('noop', payload(n))),
    enqueueBulk: async (ns) => void (await queue.addBulk(ns.map((n) => ({ name: 'noop', data: payload(n) })))),
    startWorkers: async (concurrency) => {
      worker = new BullWorker(
        'bench',
        async (job) => {
          starts.set(job.data.n, performance.now());
          return { ok: job.data.n };
        },
        { connection: new IORedis(redis.url, { maxRetriesPerRequest: null }), concurrency },
      );
      worker.on('completed', () => void done++);
      await worker.waitUntilReady();
    },
    stopWorkers: async () => {
      await worker?.close();
      worker = undefined;
    },
    completed: () => done,
    close: async () => {
      await queue.close();
      connection.disconnect();
    },
  };
}

async function until(condition: () => boolean | Promise<boolean>, slow = false): Promise<void> {
  while (!(await condition())) await new Promise((resolve) => setTimeout(resolve, slow ? 20 : 2));
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;

/** With `records`, huey-ts keeps a record per task, as BullMQ always does (scenarios 3c, 3d). */
type Scenario = { name: string; unit: string; higherIsBetter: boolean; records?: boolean; run: (side: Side) => Promise<number> };

const drain = (concurrency: number): Scenario['run'] => async (side) => {
  await side.enqueueBulk(range(SIZES.drain));
  const before = side.completed();
  const started = performance.now();
  await side.startWorkers(concurrency);
  await until(() => side.completed() - before >= SIZES.drain);
  const seconds = (performance.now() - started) / 1000;
  await side.stopWorkers();
  return SIZES.drain / seconds;
};

const scenarios: Scenario[] = [
  {
    name: '1. enqueue one at a time, awaited',
    unit: 'tasks/s',
    higherIsBetter: true,
    run: async (side) => {
      const started = performance.now();
      for (const n of range(SIZES.one)) await side.enqueueOne(n);
      return SIZES.one / ((performance.now() - started) / 1000);
    },
  },
  {
    name: '2. bulk enqueue of 10,000',
    unit: 'tasks/s',
    higherIsBetter: true,
    run: async (side) => {
      const started = performance.now();
      await side.enqueueBulk(range(SIZES.bulk));
      return SIZES.bulk / ((performance.now() - started) / 1000);
    },
  },
  { name: '3a. drain 20,000, one worker, concurrency 1', unit: 'tasks/s', higherIsBetter: true, run: drain(1) },
  { name: '3b. drain 20,000, concurrency 50', unit: 'tasks/s', higherIsBetter: true, run: drain(50) },
  { name: '3c. drain 20,000, one worker, concurrency 1, task records on', unit: 'tasks/s', higherIsBetter: true, records: true, run: drain(1) },
  { name: '3d. drain 20,000, concurrency 50, task records on', unit: 'tasks/s', higherIsBetter: true, records: true, run: drain(50) },
  { name: '4a. drain 20,000, 4 worker processes (BullMQ: concurrency 50 each)', unit: 'tasks/s', higherIsBetter: true, run: drainOutside('process') },
  { name: '4b. drain 20,000, 4 thread workers (BullMQ: 4 processes × 50)', unit: 'tasks/s', higherIsBetter: true, run: drainOutside('thread') },
  { name: '4c. drain 20,000, one async worker, concurrency 1, timed as 4a', unit: 'tasks/s', higherIsBetter: true, run: drainOutside('async') },
  {
    name: '5a. latency enqueue → start, idle (p50)',
    unit: 'ms',
    higherIsBetter: false,
    run: async (side) => {
      await side.startWorkers(1);
      const latencies: number[] = [];
      for (const n of range(SIZES.latency)) {
        const id = 1_000_000 + n;
        const sent = performance.now();
        await side.enqueueOne(id);
        await until(() => starts.has(id));
        latencies.push(starts.get(id)! - sent);
      }
      await side.stopWorkers();
      p99s.set(side.name, percentile(latencies, 0.99));
      return median(latencies);
    },
  },
  { name: '5b. latency enqueue → start, idle (p99)', unit: 'ms', higherIsBetter: false, run: async (side) => p99s.get(side.name) ?? NaN },
  {
    name: '5c. latency enqueue → start, behind a 10,000-task backlog',
    unit: 'ms',
    higherIsBetter: false,
    run: async (side) => {
      await side.startWorkers(1);
      await side.enqueueBulk(range(SIZES.backlog));
      // The probe goes in last, so it starts once the backlog ahead of it is through.
      const probe = 2_000_000;
      const sent = performance.now();
      await side.enqueueOne(probe);
      await until(() => starts.has(probe));
      const latency = starts.get(probe)! - sent;
      await side.stopWorkers();
      return latency;
    },
  },
  {
    name: '6a. Redis memory per queued task',
    unit: 'bytes',
    higherIsBetter: false,
    run: async (side) => {
      const used = async () => Number(/used_memory:(\d+)/.exec(await admin.info('memory'))![1]);
      const before = await used();
      await side.enqueueBulk(range(SIZES.memory));
      return (await used()) - before > 0 ? ((await used()) - before) / SIZES.memory : 0;
    },
  },
  {
    name: '6b. Redis commands per task (enqueue one + run)',
    unit: 'commands',
    higherIsBetter: false,
    run: async (side) => {
      await admin.configResetStat();
      const n = 1000;
      await side.startWorkers(1);
      const before = side.completed();
      for (const i of range(n)) await side.enqueueOne(2_000_000 + i);
      await until(() => side.completed() - before >= n);
      await side.stopWorkers();
      const stats = await admin.info('commandstats');
      let calls = 0;
      for (const match of stats.matchAll(/cmdstat_([a-z|]+):calls=(\d+)/g)) {
        // Blocking waits that time out and the bench's own INFO calls are not per-task work.
        if (!['info', 'config|resetstat', 'blmove', 'bzpopmin', 'brpoplpush'].includes(match[1]!)) calls += Number(match[2]);
      }
      return calls / n;
    },
  },
  { name: '7a. idle: Redis commands per second, 1 slot', unit: 'commands/s', higherIsBetter: false, run: idle(1, 'commands') },
  { name: '7b. idle: Redis commands per second, 50 slots', unit: 'commands/s', higherIsBetter: false, run: idle(50, 'commands') },
  { name: '7c. idle: consumer CPU, 50 slots', unit: '% of a core', higherIsBetter: false, run: async (side) => idleCpu.get(side.name) ?? NaN },
  // huey-ts alone: BullMQ has no embedded storage.
  { name: '8a. SQLite: latency enqueue → start, idle (p50)', unit: 'ms', higherIsBetter: false, run: async (side) => (side.name === 'huey-ts' ? sqliteLatency() : NaN) },
  { name: '8b. SQLite: latency enqueue → start, idle (p99)', unit: 'ms', higherIsBetter: false, run: async (side) => (side.name === 'huey-ts' ? (sqliteP99 ?? NaN) : NaN) },
];
/** The p99 of the latest 5a run of each side, reported as its own row. */
const p99s = new Map<string, number>();

/** The p99 of the latest 8a run, reported as 8b. */
let sqliteP99: number | undefined;

/**
 * Enqueue → start on the embedded default, as the README runs it: a
 * `huey-consumer -w 2` process on a SQLite file, a producer (this process)
 * enqueueing one task at a time with idle gaps of 50 to 250 ms between them.
 */
async function sqliteLatency(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'huey-bench-sqlite-'));
  const filename = join(dir, 'bench.db');
  const consumer = startConsumer(['bench/sqlite-tasks.huey', '-w', '2', '-q', '-n'], { HUEY_SQLITE_FILE: filename });
  // The producer's side of the task: the consumer runs the one in bench/sqlite-tasks.ts under the same name.
  const huey = new SqliteHuey('bench-sqlite', { filename });
  const stamp = huey.task()(function stamp(): number {
    throw new Error('runs in the consumer');
  });
  try {
    await consumer.waitFor(/bench module loaded/, 30_000);
    const latencies: number[] = [];
    for (let i = 0; i < SIZES.latency / 3; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50 + Math.random() * 200));
      const sent = performance.timeOrigin + performance.now();
      const started = await stamp().get({ blocking: true, timeout: 30 });
      latencies.push(started - sent);
    }
    await huey.close();
    sqliteP99 = percentile(latencies, 0.99);
    return median(latencies);
  } finally {
    consumer.child.kill('SIGTERM');
    await consumer.exited();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Seconds an idle consumer is watched for scenario 7. */
const IDLE_SECONDS = 10;
/** The CPU share of the latest 7b run of each side, reported as 7c. */
const idleCpu = new Map<string, number>();

/** CPU seconds a process has used so far (user + system, from /proc). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (100 a second on Linux)
}

/**
 * What a consumer with nothing to do costs: Redis commands per second
 * (every command, blocking waits included: each is a round trip the server
 * serves) and its own CPU, over IDLE_SECONDS after it settled.
 */
function idle(slots: number, measure: 'commands'): Scenario['run'] {
  return async (side) => {
    const { pid, stop } = await side.startIdle(slots);
    await new Promise((resolve) => setTimeout(resolve, 2000)); // past start-up work
    await admin.configResetStat();
    const cpuBefore = cpuSeconds(pid);
    await new Promise((resolve) => setTimeout(resolve, IDLE_SECONDS * 1000));
    const cpu = cpuSeconds(pid) - cpuBefore;
    const stats = await admin.info('commandstats');
    await stop();
    let calls = 0;
    for (const match of stats.matchAll(/cmdstat_([a-z|]+):calls=(\d+)/g)) {
      if (!['info', 'config|resetstat'].includes(match[1]!)) calls += Number(match[2]);
    }
    if (slots === 50) idleCpu.set(side.name, (cpu / IDLE_SECONDS) * 100);
    return measure === 'commands' ? calls / IDLE_SECONDS : NaN;
  };
}

/** Drain with the workers of scenario 4, started first and timed from the enqueue to the last result. */
function drainOutside(kind: 'process' | 'thread' | 'async'): Scenario['run'] {
  return async (side) => {
    const stop = await side.startProcesses(kind);
    const started = performance.now();
    await side.enqueueBulk(range(SIZES.drain));
    await until(async () => (await side.finishedInRedis()) >= SIZES.drain, true);
    const seconds = (performance.now() - started) / 1000;
    await stop();
    return SIZES.drain / seconds;
  };
}

// BENCH_ONLY=3,4 runs only the scenarios whose names start with those numbers (1 is not 10).
const only = process.env.BENCH_ONLY?.split(',').map((prefix) => prefix.trim()).filter(Boolean);
const chosen = scenarios.filter((scenario) => picked(scenario.name, only));
const chosenQueues = queueScenarios.filter((scenario) => picked(scenario.name, only));

const results = new Map<string, { huey: number[]; bull: number[] }>();
for (let round = 1; round <= ROUNDS; round++) {
  for (const scenario of chosen) {
    const entry = results.get(scenario.name) ?? { huey: [], bull: [] };
    // Alternate which side goes first, so neither always meets a warmer Redis.
    const order = round % 2 === 1 ? (['huey', 'bull'] as const) : (['bull', 'huey'] as const);
    for (const which of order) {
      await admin.flushAll();
      starts.clear();
      const side = which === 'huey' ? hueySide(scenario.records === true) : bullSide();
      const value = await scenario.run(side);
      await side.close();
      entry[which].push(value);
    }
    results.set(scenario.name, entry);
    process.stderr.write(`round ${round}: ${scenario.name} done\n`);
  }
}

// Named queues and Redis Cluster (bench/queues.ts), after the scenarios above.
const queueResults = await runQueueScenarios(chosenQueues, ROUNDS, redis.url, async () => void (await admin.flushAll()));
// PostgreSQL (bench/postgres.ts): PostgresHuey, graphile-worker and pg-boss, on a server of its own.
const third = await runPostgresBench(ROUNDS, only);

const redisVersion = /redis_version:(\S+)/.exec(await admin.info('server'))![1];
// The ceiling belongs to the first table: measured only when it has rows.
const ceiling = chosen.length === 0 ? [] : execFileSync('redis-benchmark', ['-p', String(redis.port), '-n', '100000', '-q', '-t', 'lpush,rpop,set'], { encoding: 'utf8' })
  .split(/\r|\n/)
  .filter((line) => /requests per second/.test(line))
  .map((line) => line.trim());
await admin.close();
await redis.close();

const format = (x: number) => (Number.isNaN(x) ? '–' : x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(2));
const tableRows = (list: ReadonlyArray<Pick<Scenario, 'name' | 'unit' | 'higherIsBetter'>>, measured: Map<string, { huey: number[]; bull: number[] }>) =>
  list.map((scenario) => {
    const { huey, bull } = measured.get(scenario.name)!;
    const h = median(huey);
    const b = median(bull);
    const ratio = b === 0 ? NaN : h / b;
    const shown = Number.isNaN(ratio) ? '–' : `${ratio.toFixed(2)}${scenario.higherIsBetter ? '' : ' (lower is better)'}`;
    return `| ${scenario.name} | ${scenario.unit} | ${format(h)} | ${format(b)} | ${shown} |`;
  });
const header = ['| scenario | unit | huey-ts | BullMQ | huey-ts / BullMQ |', '| --- | --- | --- | --- | --- |'];
/**
 * How close a huey-ts drain comes to Redis itself: its tasks/s against the
 * LPUSH requests/s of redis-benchmark, one command per round trip. A drained
 * task costs one script call (result and ack) plus its share of a batch's claim.
 */
function ceilingShare(): string[] {
  const lpush = Number(/LPUSH: ([\d.]+)/.exec(ceiling.join(' '))?.[1]);
  const drain = results.get('3a. drain 20,000, one worker, concurrency 1');
  if (!lpush || !drain) return [];
  const share = median(drain.huey) / lpush;
  return ['', `huey-ts draining with one worker (3a) runs ${Math.round(share * 100)}% as many tasks per second as redis-benchmark runs single LPUSH commands.`];
}

/**
 * How the isolated workers of scenarios 4a and 4b compare with one async
 * loop on the same machine: the CLI's, started and timed the same way (4c),
 * and the bench's own, timed from its start with the backlog waiting (3a).
 */
function isolatedShare(): string[] {
  const loops = ['4c. drain 20,000, one async worker, concurrency 1, timed as 4a', '3a. drain 20,000, one worker, concurrency 1'].filter((name) => results.has(name));
  const lines: string[] = [];
  for (const scenario of chosen.filter((each) => /^4[ab]/.test(each.name))) {
    const rate = median(results.get(scenario.name)!.huey);
    const shares = loops.map((loop) => `${Math.round((rate / median(results.get(loop)!.huey)) * 100)}% of ${loop.slice(0, 2)}`);
    if (shares.length > 0) lines.push(`huey-ts ${scenario.name.slice(0, 2)} drains at ${shares.join(' and ')} (one async loop).`);
  }
  return lines;
}

const first =
  chosen.length === 0
    ? []
    : [
        '',
        ...header,
        ...tableRows(chosen, results),
        '',
        `Ceiling, \`redis-benchmark -n 100000 -t lpush,rpop,set\` on the same server (one connection per client, no pipelining): ${ceiling.join('; ')}.`,
        ...ceilingShare(),
        ...isolatedShare(),
      ];
const second =
  chosenQueues.length === 0
    ? []
    : [
        '',
        '## Named queues and Redis Cluster',
        '',
        'Scenario 10b runs on a local cluster of 3 masters with a replica each, started by the bench. The huey-ts instance name is chosen so the 3 shards of its queue sit on 3 different masters; a BullMQ queue lives in one hash slot, so on one master.',
        '',
        ...header,
        ...tableRows(chosenQueues, queueResults),
        '',
        ...queueNotes(),
      ];
const table = [`Machine: ${cpus().length} × ${cpus()[0]?.model.trim()}; Node ${process.version}; Redis ${redisVersion}; ${ROUNDS} rounds, medians.`, ...first, ...second, ...third].join('\n');
console.log(table);
writeFileSync(new URL('./RESULTS.md', import.meta.url), `# Benchmark results\n\nWritten by \`npm run bench\`.\n\n${table}\n`);
process.exit(0);
