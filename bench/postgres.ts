// PostgresHuey against graphile-worker and pg-boss, on one PostgreSQL server the bench
// starts for itself (durability off, as for every side), each side in a fresh database of
// its own per measurement: run by bench/bench.ts after its Redis scenarios, into a third table.
//   11a-b. enqueue one at a time (awaited), and 10,000 in bulk
//   11c-d. drain 10,000 with one worker at concurrency 1, and at 50 (timed for at most 20 s)
//   11g.   drain 10,000 with 4 worker processes at concurrency 50 each (timed for at most 20 s)
//   11e-f. latency enqueue → start, idle (p50) at concurrency 1, and behind a 2,000-task
//          backlog at concurrency 50
// Workers run in the bench's process for all three, as 3a/3b do for the Redis table. Each
// peer is set up as its users run it: graphile-worker's `run()` with `concurrency`, its
// LISTEN/NOTIFY wake-ups and default poll interval; pg-boss's `work()` with `batchSize` (a
// batch run at once in the handler) polling every 0.5 s, its fastest. huey-ts stores each result.
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { Logger, makeWorkerUtils, run, type Runner, type WorkerUtils } from 'graphile-worker';
import PgBoss from 'pg-boss';
import { PostgresHuey } from '../src/index.js';
import { Consumer } from '../src/consumer/consumer.js';
import { startPostgres, type TestPostgres } from '../test/support/postgres-server.js';
import { Spawned, startConsumer } from '../test/support/processes.js';
import { picked } from './queues.js';

export type PgSide = 'huey' | 'graphile' | 'pgboss';
const SIDES: readonly PgSide[] = ['huey', 'graphile', 'pgboss'];
const SIZES = { one: 2000, bulk: 10_000, drain: 10_000, latency: 100, backlog: 2000 };
const DRAIN_TIMEOUT_MS = 300_000;

const payload = (n: number) => ({ n, text: 'hello', tags: ['a', 'b'] });
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + DRAIN_TIMEOUT_MS;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** One library on one database: enqueue, start workers, count completions, and when each task started. */
interface Side {
  /** Start 4 worker processes at concurrency 50 (huey-ts: one consumer with 4 process workers); resolves to a function that stops them. */
  startProcesses(): Promise<() => Promise<void>>;
  /** Tasks finished by any process, read from the database. */
  finishedInDb(): Promise<number>;
  enqueueOne(n: number): Promise<void>;
  enqueueBulk(ns: number[]): Promise<void>;
  startWorkers(concurrency: number): Promise<void>;
  completed(): number;
  starts: Map<number, number>;
  close(): Promise<void>;
}

async function hueySide(url: string): Promise<Side> {
  const huey = new PostgresHuey('bench', { connectionString: url });
  const starts = new Map<number, number>();
  let done = 0;
  huey.signal('complete')(() => void done++);
  const noop = huey.task()(function noop(data: { n: number }) {
    starts.set(data.n, performance.now());
    return { ok: data.n };
  });
  await huey.connect();
  let consumer: Consumer | undefined;
  return {
    startProcesses: async () => {
      const consumer = startConsumer(['bench/pg-tasks.huey', '-w', '4', '-k', 'process', '-q'], { DATABASE_URL: url });
      await until(() => (consumer.output.match(/bench module loaded/g) ?? []).length >= 5 || consumer.child.exitCode !== null, 'the consumer and its workers to load');
      if (consumer.child.exitCode !== null) throw new Error(`consumer exited:\n${consumer.output}`);
      return async () => void (consumer.child.kill('SIGTERM'), await consumer.exited());
    },
    finishedInDb: () => huey.storage.resultStoreSize(),
    enqueueOne: async (n) => void (await noop.enqueue(payload(n))),
    enqueueBulk: async (ns) => void (await noop.map(ns.map((n) => [payload(n)] as [ReturnType<typeof payload>])).enqueued),
    startWorkers: async (concurrency) => {
      consumer = new Consumer(huey, { workers: concurrency, periodic: false });
      await consumer.start();
    },
    completed: () => done,
    starts,
    close: async () => {
      await consumer?.stop({ graceful: true });
      await huey.close();
    },
  };
}

async function graphileSide(url: string): Promise<Side> {
  // A pool of the bench's own, so that it is closed for sure before its database is dropped.
  const pgPool = new pg.Pool({ connectionString: url, max: 60 });
  pgPool.on('error', () => {});
  const utils: WorkerUtils = await makeWorkerUtils({ pgPool, logger: quietGraphileLogger() });
  await utils.migrate();
  const starts = new Map<number, number>();
  let done = 0;
  let runner: Runner | undefined;
  return {
    startProcesses: () => peerProcesses('graphile', url),
    // Graphile-worker deletes a job once it ran: finished = added - left.
    finishedInDb: async () => SIZES.drain - Number((await pgPool.query('SELECT count(*) AS n FROM graphile_worker.jobs')).rows[0].n),
    enqueueOne: async (n) => void (await utils.addJob('noop', payload(n))),
    enqueueBulk: async (ns) => void (await utils.addJobs(ns.map((n) => ({ identifier: 'noop', payload: payload(n) })))),
    startWorkers: async (concurrency) => {
      runner = await run({
        pgPool,
        concurrency,
        noHandleSignals: true,
        logger: quietGraphileLogger(),
        taskList: {
          noop: async (data) => {
            starts.set((data as { n: number }).n, performance.now());
            done++;
          },
        },
      });
    },
    completed: () => done,
    starts,
    close: async () => {
      await runner?.stop();
      await utils.release();
      await pgPool.end();
    },
  };
}

async function pgBossSide(url: string): Promise<Side> {
  const boss = new PgBoss({ connectionString: url });
  boss.on('error', () => {});
  await boss.start();
  await boss.createQueue('noop');
  const starts = new Map<number, number>();
  let done = 0;
  return {
    startProcesses: () => peerProcesses('pgboss', url),
    finishedInDb: async () => Number((await boss.getDb().executeSql("SELECT count(*) AS n FROM pgboss.job WHERE name = 'noop' AND state = 'completed'", [])).rows[0].n),
    enqueueOne: async (n) => void (await boss.send('noop', payload(n))),
    enqueueBulk: async (ns) => void (await boss.insert(ns.map((n) => ({ name: 'noop', data: payload(n) })))),
    startWorkers: async (concurrency) => {
      // Its fastest polling (0.5 s; the default is 2 s), as users who want throughput set it.
      await boss.work<{ n: number }>('noop', { batchSize: concurrency, pollingIntervalSeconds: 0.5 }, async (jobs) => {
        await Promise.all(
          jobs.map(async (job) => {
            starts.set(job.data.n, performance.now());
            done++;
          }),
        );
      });
    },
    completed: () => done,
    starts,
    close: () => boss.stop({ graceful: false, wait: true }),
  };
}

/** Four worker processes of a peer (bench/pg-peer-worker.ts), started and ready; resolves to a function that stops them. */
async function peerProcesses(peer: 'graphile' | 'pgboss', url: string): Promise<() => Promise<void>> {
  const workers = Array.from({ length: 4 }, () => new Spawned(process.execPath, ['--import', 'tsx', 'bench/pg-peer-worker.ts'], { DATABASE_URL: url, PEER: peer }));
  await Promise.all(workers.map((worker) => worker.waitFor(/ready/, 60_000)));
  return async () => void (await Promise.all(workers.map((worker) => (worker.child.kill('SIGTERM'), worker.exited()))));
}

/** graphile-worker logs each job at info; the bench keeps warnings and errors. */
function quietGraphileLogger() {
  return new Logger(() => (level: string, message: string) => {
    if (level === 'error' || level === 'warning') process.stderr.write(`graphile-worker ${level}: ${message}\n`);
  });
}

interface PgScenario {
  name: string;
  unit: string;
  higherIsBetter: boolean;
  run(side: Side): Promise<number>;
}

/**
 * Tasks finished per second, from the workers' start until the backlog is
 * through or DRAIN_WINDOW_MS has passed, whichever is first: a poller that
 * takes a batch every half second would otherwise hold the bench for hours.
 */
const drain = (concurrency: number): PgScenario['run'] => async (side) => {
  await side.enqueueBulk(range(SIZES.drain));
  const started = performance.now();
  await side.startWorkers(concurrency);
  while (side.completed() < SIZES.drain && performance.now() - started < DRAIN_WINDOW_MS) await new Promise((resolve) => setTimeout(resolve, 2));
  return side.completed() / ((performance.now() - started) / 1000);
};

/** The longest a drain is timed for; see `drain`. */
const DRAIN_WINDOW_MS = 20_000;

export const postgresScenarios: PgScenario[] = [
  {
    name: '11a. PostgreSQL: enqueue one at a time, awaited',
    unit: 'tasks/s',
    higherIsBetter: true,
    run: async (side) => {
      const started = performance.now();
      for (const n of range(SIZES.one)) await side.enqueueOne(n);
      return SIZES.one / ((performance.now() - started) / 1000);
    },
  },
  {
    name: '11b. PostgreSQL: bulk enqueue of 10,000',
    unit: 'tasks/s',
    higherIsBetter: true,
    run: async (side) => {
      const started = performance.now();
      await side.enqueueBulk(range(SIZES.bulk));
      return SIZES.bulk / ((performance.now() - started) / 1000);
    },
  },
  { name: '11c. PostgreSQL: drain 10,000, concurrency 1', unit: 'tasks/s', higherIsBetter: true, run: drain(1) },
  { name: '11d. PostgreSQL: drain 10,000, concurrency 50', unit: 'tasks/s', higherIsBetter: true, run: drain(50) },
  {
    name: '11e. PostgreSQL: latency enqueue → start, idle (p50)',
    unit: 'ms',
    higherIsBetter: false,
    run: async (side) => {
      await side.startWorkers(1);
      const latencies: number[] = [];
      for (const n of range(SIZES.latency)) {
        const id = 1_000_000 + n;
        const sent = performance.now();
        await side.enqueueOne(id);
        await until(() => side.starts.has(id), 'the task to start');
        latencies.push(side.starts.get(id)! - sent);
      }
      return median(latencies);
    },
  },
  {
    name: '11f. PostgreSQL: latency enqueue → start, behind a 2,000-task backlog, concurrency 50',
    unit: 'ms',
    higherIsBetter: false,
    run: async (side) => {
      await side.enqueueBulk(range(SIZES.backlog));
      await side.startWorkers(50);
      const probe = 2_000_000;
      const sent = performance.now();
      await side.enqueueOne(probe);
      await until(() => side.starts.has(probe), 'the probe to start');
      return side.starts.get(probe)! - sent;
    },
  },
  {
    name: '11g. PostgreSQL: drain 10,000, 4 worker processes at concurrency 50',
    unit: 'tasks/s',
    higherIsBetter: true,
    run: async (side) => {
      const stop = await side.startProcesses();
      try {
        const started = performance.now();
        await side.enqueueBulk(range(SIZES.drain));
        let finished = 0;
        while ((finished = await side.finishedInDb()) < SIZES.drain && performance.now() - started < DRAIN_WINDOW_MS) await new Promise((resolve) => setTimeout(resolve, 50));
        return finished / ((performance.now() - started) / 1000);
      } finally {
        await stop();
      }
    },
  },
];

/** Each measurement in a database of its own, made from template0 and dropped after. */
async function withDatabase<T>(server: TestPostgres, fn: (url: string) => Promise<T>): Promise<T> {
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  const name = `bench_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
  await admin.query(`CREATE DATABASE ${name}`);
  try {
    return await fn(server.url.replace(/\/postgres$/, `/${name}`));
  } finally {
    await admin.query(`DROP DATABASE ${name} WITH (FORCE)`);
    await admin.end();
  }
}

const make: Record<PgSide, (url: string) => Promise<Side>> = { huey: hueySide, graphile: graphileSide, pgboss: pgBossSide };

/** Run the chosen scenarios, `rounds` times, sides in turn; returns the table's lines. */
export async function runPostgresBench(rounds: number, only: readonly string[] | undefined): Promise<string[]> {
  const chosen = postgresScenarios.filter((scenario) => picked(scenario.name, only));
  if (chosen.length === 0) return [];
  const server = await startPostgres();
  const results = new Map<string, Record<PgSide, number[]>>();
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const scenario of chosen) {
        const entry = results.get(scenario.name) ?? { huey: [], graphile: [], pgboss: [] };
        // Each side goes first in turn.
        const order = SIDES.map((_, i) => SIDES[(i + round) % SIDES.length]!);
        for (const which of order) {
          const value = await withDatabase(server, async (url) => {
            const side = await make[which](url);
            try {
              return await scenario.run(side);
            } finally {
              await side.close();
            }
          });
          entry[which].push(value);
        }
        results.set(scenario.name, entry);
        process.stderr.write(`round ${round}: ${scenario.name} done\n`);
      }
    }
  } finally {
    await server.close();
  }
  const version = await postgresVersion();
  const format = (x: number) => (x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(2));
  const ratio = (a: number, b: number, lower: boolean) => `${(a / b).toFixed(2)}${lower ? ' (lower is better)' : ''}`;
  return [
    '',
    '## PostgreSQL: PostgresHuey, graphile-worker and pg-boss',
    '',
    `One PostgreSQL ${version} started by the bench (fsync off), a fresh database per measurement; graphile-worker 0.17, pg-boss 10; workers in the bench's process.`,
    '',
    '| scenario | unit | huey-ts | graphile-worker | pg-boss | huey-ts / graphile-worker | huey-ts / pg-boss |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...chosen.map((scenario) => {
      const { huey, graphile, pgboss } = results.get(scenario.name)!;
      const [h, g, p] = [median(huey), median(graphile), median(pgboss)];
      return `| ${scenario.name} | ${scenario.unit} | ${format(h)} | ${format(g)} | ${format(p)} | ${ratio(h, g, !scenario.higherIsBetter)} | ${ratio(h, p, !scenario.higherIsBetter)} |`;
    }),
  ];
}

async function postgresVersion(): Promise<string> {
  const { execFileSync } = await import('node:child_process');
  try {
    return execFileSync('psql', ['--version'], { encoding: 'utf8' }).trim().split(' ').pop() ?? '';
  } catch {
    return '';
  }
}
