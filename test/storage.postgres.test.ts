import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { PostgresHuey, PostgresStorage, StorageError, type Result } from '../src/index.js';
import { Consumer, Worker } from '../src/consumer/index.js';
import { startDashboard } from '../src/dashboard/server.js';
import { killAll, ROOT, runScript, startConsumer } from './support/processes.js';
import { startPostgres, type TestPostgres } from './support/postgres-server.js';
import { namedQueueStorage, storageConformance } from './support/storage-conformance.js';

// PostgresStorage on a PostgreSQL server of the test's own: the conformance suite, and what
// only PostgreSQL gives (the caller's transaction, notifications), with its faults.

let server: TestPostgres;
let instances = 0;
before(async () => {
  server = await startPostgres();
});
after(async () => {
  await killAll();
  await server?.close();
});

storageConformance('postgres', async () => new PostgresStorage('conformance', { connectionString: server.url }));
// A named queue's storage: tables of its own, on the instance's pool (closed with the instance's storage).
storageConformance('postgres named queue', async () => namedQueueStorage(new PostgresStorage('conformance-q', { connectionString: server.url }), 'mail'));

function app(options: ConstructorParameters<typeof PostgresHuey>[1] = {}) {
  const huey = new PostgresHuey(`pg${++instances}`, { connectionString: server.url, records: true, ...options });
  const add = huey.task()(function add(a: number, b: number) {
    return a + b;
  });
  return { huey, add };
}

async function drain(huey: PostgresHuey): Promise<void> {
  const worker = new Worker(huey, 'w');
  while ((await worker.runOnce(0)) > 0);
}

describe('PostgresHuey: enqueue in the caller\'s transaction', () => {
  it('enqueues on commit only: rolled back, the task never exists; committed, it runs', async () => {
    const { huey, add } = app();
    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    try {
      await huey.connect();
      await client.query('CREATE TABLE IF NOT EXISTS orders (id serial PRIMARY KEY, total int)');

      await client.query('BEGIN');
      await client.query('INSERT INTO orders (total) VALUES (3)');
      const lost = await huey.enqueueIn(client, add.s(1, 2));
      assert.equal(await huey.pendingCount(), 0, 'not visible before the commit');
      await client.query('ROLLBACK');
      assert.equal(await huey.pendingCount(), 0);
      assert.equal(await lost.status(), null, 'no record either');

      await client.query('BEGIN');
      await client.query('INSERT INTO orders (total) VALUES (7)');
      const kept = await huey.enqueueIn(client, add.s(3, 4));
      const later = await huey.enqueueIn(client, add.s(5, 5).with({ delay: 3600 }));
      await client.query('COMMIT');
      assert.equal(await huey.pendingCount(), 1);
      assert.equal(await huey.scheduledCount(), 1);
      assert.equal((await kept.status())?.state, 'enqueued');
      assert.equal((await later.status())?.state, 'scheduled');
      await drain(huey);
      assert.equal(await kept.get(), 7);
      assert.equal(Number((await client.query('SELECT count(*) AS n FROM orders')).rows[0].n), 1);
    } finally {
      await client.end();
      await huey.flush();
      await huey.close();
    }
  });

  it('wakes a waiting worker on the commit, not before', async () => {
    const { huey, add } = app();
    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    try {
      await huey.connect();
      const waiting = huey.storage.dequeueMany('waiter', 1, 10_000);
      // Let the wait start listening.
      await new Promise((resolve) => setTimeout(resolve, 300));
      await client.query('BEGIN');
      const result = await huey.enqueueIn(client, add.s(2, 2));
      const early = await Promise.race([waiting.then(() => 'claimed'), new Promise((resolve) => setTimeout(() => resolve('still waiting'), 300))]);
      assert.equal(early, 'still waiting', 'an uncommitted task is not claimed');
      const committedAt = Date.now();
      await client.query('COMMIT');
      const [claim] = await waiting;
      assert.ok(Date.now() - committedAt < 900, `woken by the commit's notice, not the 1 s safety look (${Date.now() - committedAt} ms)`);
      assert.equal(JSON.parse(claim!.data).id, result.id);
      await huey.storage.ack(claim!);
    } finally {
      await client.end();
      await huey.flush();
      await huey.close();
    }
  });

  it('runs no claim query while a consumer idles, and still starts a task at once', async () => {
    const { huey, add } = app({ records: false });
    const consumer = new Consumer(huey, { workers: 2, periodic: false });
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    const table = (huey.storage as PostgresStorage).tables.queue;
    const scans = async () => {
      // Statistics are gathered by each backend and flushed at most once a second (or at transaction end, 15+): ask for a fresh view.
      await admin.query('SELECT pg_stat_clear_snapshot()');
      const { rows } = await admin.query('SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) AS n FROM pg_stat_user_tables WHERE relid = $1::regclass', [table]);
      return Number(rows[0].n);
    };
    try {
      await consumer.start();
      // Past start-up (first looks of each worker), then 3 s of idling.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const before = await scans();
      await new Promise((resolve) => setTimeout(resolve, 3000));
      const idle = (await scans()) - before;
      assert.ok(idle <= 1, `the queue table was scanned ${idle} times in 3 s of idling`);
      const started = Date.now();
      assert.equal(await add(2, 3).get({ blocking: true, timeout: 10 }), 5);
      assert.ok(Date.now() - started < 900, `woken by the notice (${Date.now() - started} ms)`);
    } finally {
      await admin.end();
      await consumer.stop();
      await huey.flush();
      await huey.close();
    }
  });

  it('refuses what it cannot do in a transaction: a key, dependsOn, immediate mode', async () => {
    const { huey, add } = app();
    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    try {
      await assert.rejects(huey.enqueueIn(client, add.s(1, 1).with({ key: 'k' })), /takes no key and no dependsOn/);
      huey.immediate = true;
      await assert.rejects(huey.enqueueIn(client, add.s(1, 1)), /no immediate mode/);
    } finally {
      await client.end();
      await huey.close();
    }
  });
});

describe('PostgresHuey under faults', () => {
  it('carries on through a database restart mid-run: every accepted enqueue runs', async () => {
    const { huey, add } = app({ records: false });
    const consumer = new Consumer(huey, { workers: 4, periodic: false });
    await consumer.start();
    const accepted: Array<Result<number>> = [];
    let refused = 0;
    let producing = true;
    const producer = (async () => {
      for (let i = 0; producing; i++) {
        try {
          accepted.push(await add.enqueue(i, 1));
        } catch (error) {
          assert.ok(error instanceof StorageError, String(error));
          refused++;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    try {
      while (accepted.length < 50) await new Promise((resolve) => setTimeout(resolve, 20));
      await server.stop();
      await new Promise((resolve) => setTimeout(resolve, 300));
      await server.restart();
      const after = accepted.length;
      const deadline = Date.now() + 20_000;
      while (accepted.length < after + 50 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      producing = false;
      await producer;
      assert.ok(accepted.length >= after + 50, `enqueues went on after the restart (${accepted.length - after})`);
      const values = await Promise.all(accepted.map((result, i) => result.get({ blocking: true, timeout: 30 }).then((v) => [i, v] as const)));
      assert.equal(values.length, accepted.length, 'every accepted enqueue ran');
      assert.ok(refused >= 0);
    } finally {
      producing = false;
      await consumer.stop();
      await huey.flush();
      await huey.close();
    }
  });

  it('says so clearly when the pool is exhausted or a statement times out, and loses nothing', async () => {
    const { huey, add } = app({ max: 1, connectionTimeoutMillis: 300, statement_timeout: 300 });
    await huey.connect();
    const pool = (huey.storage as unknown as { pool: pg.Pool }).pool;
    const held = await pool.connect();
    try {
      await assert.rejects(add.enqueue(1, 1), (error: Error) => error instanceof StorageError && /timeout exceeded when trying to connect/.test(error.message));
    } finally {
      held.release();
    }
    const blocker = new pg.Client({ connectionString: server.url });
    await blocker.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query(`LOCK TABLE ${(huey.storage as PostgresStorage).tables.queue} IN ACCESS EXCLUSIVE MODE`);
      await assert.rejects(add.enqueue(2, 2), (error: Error) => error instanceof StorageError && /statement timeout/.test(error.message));
      await blocker.query('ROLLBACK');
      const sum = await add.enqueue(3, 3);
      await drain(huey);
      assert.equal(await sum.get(), 6);
      assert.equal(await huey.pendingCount(), 0);
    } finally {
      await blocker.end();
      await huey.flush();
      await huey.close();
    }
  });

  it('dead-letters a corrupt row written straight into the queue table, and runs the rest', async () => {
    const { huey, add } = app();
    await huey.connect();
    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    try {
      await client.query(`INSERT INTO ${(huey.storage as PostgresStorage).tables.queue} (data, priority) VALUES ('{not json', 0), ('{"id":"x","name":"add","args":"nope"}', 0)`);
      const good = await add.enqueue(1, 2);
      await drain(huey);
      assert.equal(await good.get(), 3);
      const reasons = (await huey.storage.deadLetters()).map((letter) => letter.reason);
      assert.equal(reasons.length, 2);
      assert.ok(reasons.every((reason) => /corrupt payload/.test(reason)), reasons.join('\n'));
    } finally {
      await client.end();
      await huey.flush();
      await huey.close();
    }
  });
});

describe('PostgresHuey schema', () => {
  it('keeps instances apart in one schema, in a schema of the user\'s choosing, with a versioned migrations table', async () => {
    const one = app({ schema: 'tasks_here' });
    const two = app({ schema: 'tasks_here' });
    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    try {
      await one.add.enqueue(1, 1);
      await two.huey.connect();
      assert.equal(await one.huey.pendingCount(), 1);
      assert.equal(await two.huey.pendingCount(), 0);
      const { rows } = await client.query('SELECT base, version FROM tasks_here.huey_migrations ORDER BY base');
      assert.deepEqual(rows.map((row) => row.base), [one.huey.name, two.huey.name]);
      assert.ok(rows.every((row) => row.version === 1));
      // A newer huey-ts's tables are refused, not guessed at.
      await client.query('UPDATE tasks_here.huey_migrations SET version = 99 WHERE base = $1', [two.huey.name]);
      const again = new PostgresHuey(two.huey.name, { connectionString: server.url, schema: 'tasks_here' });
      await assert.rejects(again.connect(), /at version 99, made by a newer huey-ts/);
      await again.close();
      assert.throws(() => new PostgresHuey('x', { connectionString: server.url, schema: 'bad"name' }), /schema must be a plain SQL name/);
    } finally {
      await client.end();
      await one.huey.flush();
      for (const { huey } of [one, two]) await huey.close();
    }
  });
});

describe('PostgresStorage settles in batches', () => {
  it('sends the acks and results of a turn in one statement, and those still waiting when it closes', async () => {
    const storage = new PostgresStorage(`pg${++instances}`, { connectionString: server.url });
    try {
      await storage.enqueueMany([{ data: 'a' }, { data: 'b' }, { data: 'c' }]);
      const [a, b, c] = await storage.dequeueMany('w', 3);
      await Promise.all([storage.putResult('ra', 'A', undefined, a!), storage.ack(b!)]);
      assert.equal(await storage.peekData('ra'), 'A');
      assert.deepEqual((await storage.claimed('w')).map((claim) => claim.data), ['c']);
      // Not awaited before close: close sends it, then ends the pool.
      const last = storage.ack(c!);
      await storage.close();
      await last;
      const again = new PostgresStorage(storage.name, { connectionString: server.url });
      assert.deepEqual(await again.claimed('w'), []);
      await again.flushAll();
      await again.close();
    } finally {
      await storage.close();
    }
  });
});

describe('the dashboard on PostgreSQL', () => {
  it('serves its snapshot, a task\'s status and /metrics from PostgresHuey', async () => {
    const { huey, add } = app();
    const dashboard = await startDashboard(huey, { port: 0 });
    try {
      const pending = await add.enqueue(1, 2);
      const snapshot = (await (await fetch(new URL('/api/snapshot', dashboard.url))).json()) as { storage: string; pending: number; records: boolean };
      assert.deepEqual([snapshot.storage, snapshot.pending, snapshot.records], ['postgres', 1, true]);
      const status = (await (await fetch(new URL(`/api/status?id=${pending.id}`, dashboard.url))).json()) as { status: { state: string } };
      assert.equal(status.status.state, 'enqueued');
      const metrics = await (await fetch(new URL('/metrics', dashboard.url))).text();
      assert.match(metrics, /^huey_queue_pending\{queue="default"\} 1$/m);
      assert.match(metrics, /^huey_queue_failed_tasks\{queue="default"\} 0$/m);
    } finally {
      await dashboard.close();
      await huey.flush();
      await huey.close();
    }
  });
});

describe('huey migrate on PostgreSQL', () => {
  it('says where the tables stand with --dry-run, changing nothing, then makes them, then finds them up to date', async () => {
    const env = { ...process.env, DATABASE_URL: server.url, HUEY_PG_SCHEMA: 'cli_migrate' };
    const cli = (...args: string[]) =>
      new Promise<{ code: number; stdout: string }>((resolve) =>
        execFile(process.execPath, ['dist/cli/huey.js', ...args], { cwd: ROOT, env }, (error, stdout, stderr) => resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout: stdout + stderr })),
      );
    const dry = await cli('migrate', 'test/fixtures/postgres.huey', '--dry-run');
    assert.equal(dry.code, 0, dry.stdout);
    assert.match(dry.stdout, /tables "fixture-pg_\*" in schema "cli_migrate": would go from version 0 to 1/);
    assert.match(dry.stdout, /tables "fixture-pg:mail_\*" in schema "cli_migrate": would go from version 0 to 1/);
    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    try {
      assert.equal((await client.query("SELECT to_regclass('cli_migrate.huey_migrations') AS t")).rows[0].t, null, 'a dry run makes nothing');
      const made = await cli('migrate', 'test/fixtures/postgres.huey');
      assert.match(made.stdout, /tables "fixture-pg_\*" in schema "cli_migrate": went from version 0 to 1/);
      const again = await cli('migrate', 'test/fixtures/postgres.huey');
      assert.match(again.stdout, /tables "fixture-pg_\*" in schema "cli_migrate": at version 1, up to date/);
      assert.match(again.stdout, /nothing to move/);
    } finally {
      await client.end();
    }
  });
});

describe('examples/simple on PostgreSQL', () => {
  it('runs with DATABASE_URL set, a consumer with process workers and a producer', async () => {
    const env = { REDIS_URL: '', DATABASE_URL: server.url };
    const consumer = startConsumer(['examples/simple/main.huey', '-w', '2', '-k', 'process'], env);
    await consumer.waitFor(/consumer running with/);
    assert.match(consumer.output, /storage: postgres/);
    const producer = await runScript('examples/simple/producer.ts', env);
    assert.equal(producer.code, 0, producer.output);
    assert.match(producer.output, /add\(1, 2\) = 3/);
    assert.match(producer.output, /flaky\('demo'\) = "demo-\d+ worked on try 3"/);
    consumer.child.kill('SIGTERM');
    assert.equal(await consumer.exited(), 0, consumer.output);
  });
});
