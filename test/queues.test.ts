import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { createClient } from '@redis/client';
import {
  ConfigurationError,
  Huey,
  MemoryStorage,
  PriorityRedisStorage,
  RedisHuey,
  RedisStorage,
  SqliteStorage,
  type Storage,
} from '../src/index.js';
import { Consumer, Scheduler, Worker } from '../src/consumer/index.js';
import { execFile } from 'node:child_process';
import { takeSnapshot } from '../src/dashboard/snapshot.js';
import { prometheusText } from '../src/dashboard/metrics.js';
import { killAll, ROOT, startConsumer } from './support/processes.js';
import { startRedis, type TestRedis } from './support/redis-server.js';

// Named queues (RQ's queues, Celery's -Q): routing, strict order, waiting on all at once,
// per-queue schedules, pauses, leases and shards, on every storage and through the CLI.

let redis: TestRedis;
const dir = mkdtempSync(join(tmpdir(), 'huey-queues-'));
let instances = 0;

before(async () => {
  redis = await startRedis();
});

after(async () => {
  await killAll();
  await redis.close();
  rmSync(dir, { recursive: true, force: true });
});

const STORAGES: Record<string, () => Storage> = {
  memory: () => new MemoryStorage(),
  sqlite: () => new SqliteStorage(`q${++instances}`, { filename: join(dir, 'queues.db') }),
  redis: () => new RedisStorage(`q${++instances}`, { url: redis.url }),
  'priority redis': () => new PriorityRedisStorage(`q${++instances}`, { url: redis.url }),
};

/** A Huey with a task on each of three queues, each run noting its name in `ran`. */
function threeQueues(storage: Storage) {
  const huey = new Huey(`app${++instances}`, { storage, records: true });
  huey.queue('critical');
  huey.queue('bulk');
  const ran: string[] = [];
  const urgent = huey.task({ queue: 'critical' })(function urgent(n: number) {
    ran.push(`critical${n}`);
    return n;
  });
  const plain = huey.task()(function plain(n: number) {
    ran.push(`default${n}`);
    return n;
  });
  const batch = huey.task({ queue: 'bulk' })(function batch(n: number) {
    ran.push(`bulk${n}`);
    if (n === 0) urgent(99);
    return n;
  });
  return { huey, ran, urgent, plain, batch };
}

/** Run one message at a time until every queue the worker serves is empty. */
async function drain(worker: Worker): Promise<void> {
  while ((await worker.runOnce(0)) > 0);
}

for (const [kind, make] of Object.entries(STORAGES)) {
  describe(`named queues on ${kind}`, () => {
    it('routes each task to its queue, and a call to the queue it names', async () => {
      const { huey, urgent, plain, batch } = threeQueues(make());
      try {
        assert.deepEqual(huey.queueNames, ['default', 'critical', 'bulk']);
        await urgent(1).enqueued;
        await plain(1).enqueued;
        await batch(1).enqueued;
        await plain.schedule({ args: [2], delay: 0, queue: 'bulk' }).enqueued;
        await urgent.schedule({ args: [3], delay: 60 }).enqueued;
        assert.equal(await huey.pendingCount(), 1);
        assert.equal(await huey.pendingCount('critical'), 1);
        assert.deepEqual((await huey.pending(10, 'bulk')).map((m) => [m.name, m.queue]), [['batch', 'bulk'], ['plain', 'bulk']]);
        // A delayed task waits in its own queue's schedule.
        assert.equal(await huey.scheduledCount('critical'), 1);
        assert.equal(await huey.scheduledCount(), 0);
        assert.equal((await huey.scheduled(10, 'critical'))[0]?.queue, 'critical');
      } finally {
        await huey.flush();
        await huey.close();
      }
    });

    it('serves queues in strict order: always from the first that has messages', async () => {
      const { huey, ran, urgent, plain, batch } = threeQueues(make());
      try {
        for (let n = 0; n < 3; n++) await batch(n).enqueued;
        for (let n = 0; n < 3; n++) await plain(n).enqueued;
        for (let n = 0; n < 3; n++) await urgent(n).enqueued;
        const worker = new Worker(huey, 'w1', { queues: ['critical', 'default', 'bulk'], prefetchWindow: 0 });
        await drain(worker);
        // bulk0 enqueues critical99: it runs next, before bulk1.
        assert.deepEqual(ran, ['critical0', 'critical1', 'critical2', 'default0', 'default1', 'default2', 'bulk0', 'critical99', 'bulk1', 'bulk2']);
        // The other order, and a queue left out.
        ran.length = 0;
        for (let n = 0; n < 2; n++) {
          await urgent(n).enqueued;
          await batch(n).enqueued;
          await plain(n).enqueued;
        }
        await drain(new Worker(huey, 'w2', { queues: ['bulk', 'critical'], prefetchWindow: 0 }));
        assert.deepEqual(ran, ['bulk0', 'bulk1', 'critical0', 'critical1', 'critical99']);
        assert.equal(await huey.pendingCount(), 2, 'the default queue, not served, keeps its messages');
      } finally {
        await huey.flush();
        await huey.close();
      }
    });

    it('stores results in the queue the task ran on, where handles and huey.result(id) find them', async () => {
      const { huey, urgent, batch } = threeQueues(make());
      try {
        const a = urgent(7);
        const b = batch(8);
        await Promise.all([a.enqueued, b.enqueued]);
        await drain(new Worker(huey, 'w1', { prefetchWindow: 0 }));
        assert.equal(a.queue, 'critical');
        assert.equal(await a.get(), 7);
        assert.equal(await huey.result(b.id).get({ preserve: true }), 8);
        assert.equal(await huey.result(b.id, { queue: 'bulk' }).get(), 8);
        assert.equal(await huey.storage.peekData(b.id), null, 'not in the instance storage');
      } finally {
        await huey.flush();
        await huey.close();
      }
    });
  });
}

describe('periodic tasks on a queue', () => {
  it('are enqueued on their queue by the scheduler', async () => {
    const huey = new Huey(`periodic${++instances}`, { storage: new MemoryStorage() });
    huey.periodicTask(() => true, { queue: 'reports' })(function nightly() {
      return 'done';
    });
    const scheduler = new Scheduler(huey, { queues: huey.queueNames });
    assert.deepEqual(huey.queueNames, ['default', 'reports']);
    assert.deepEqual(await scheduler.enqueuePeriodic(Date.UTC(2030, 0, 1, 3, 0)), ['nightly']);
    assert.deepEqual((await huey.pending(10, 'reports')).map((m) => [m.name, m.queue]), [['nightly', 'reports']]);
    assert.equal(await huey.pendingCount(), 0);
  });
});

describe('named queues on Redis', () => {
  it('lets an idle worker wait on all its queues at once, without polling', async () => {
    const { huey, batch } = threeQueues(new RedisStorage(`idle${++instances}`, { url: redis.url }));
    const admin = createClient({ url: redis.url });
    await admin.connect();
    const worker = new Worker(huey, 'w1', { queues: ['critical', 'default', 'bulk'], blockingTimeout: 1 });
    const running = worker.run();
    try {
      // Idle for a while: count what the worker sends.
      await sleep(300);
      await admin.configResetStat();
      await sleep(2000);
      const stats = await admin.info('commandstats');
      const calls = [...stats.matchAll(/cmdstat_(\w+):calls=(\d+)/g)].map(([, name, n]) => [name!, Number(n)] as const);
      const total = calls.filter(([name]) => name !== 'info' && name !== 'config').reduce((sum, [, n]) => sum + n, 0);
      const blocking = calls.find(([name]) => name === 'blmove')?.[1] ?? 0;
      // A wait per queue per second, and the worker's status once a second: a poll would be hundreds.
      assert.ok(blocking >= 1 && blocking <= 12, `blocking waits in 2 s: ${blocking}`);
      assert.ok(total <= 40, `commands in 2 s of idling on three queues: ${total} (${JSON.stringify(calls)})`);
      // A message on the last queue is taken at once by the wait on it.
      const result = batch(5);
      assert.equal(await result.get({ blocking: true, timeout: 10 }), 5);
    } finally {
      worker.stop();
      await running;
      await admin.close();
      await huey.flush();
      await huey.close();
    }
  });

  it('pauses and resumes one queue while the others run', async () => {
    const { huey, plain, batch } = threeQueues(new RedisStorage(`pause${++instances}`, { url: redis.url }));
    const consumer = new Consumer(huey, { workers: 2, queues: ['default', 'bulk'] });
    try {
      await huey.pause('bulk');
      assert.equal(await huey.isPaused('bulk'), true);
      assert.equal(await huey.isPaused(), false);
      await consumer.start();
      const held = batch(1);
      assert.equal(await plain(2).get({ blocking: true, timeout: 10 }), 2);
      // Two status writes later the paused queue's message is still waiting.
      await sleep(2200);
      assert.equal(await huey.pendingCount('bulk'), 1);
      assert.equal(await held.get(), undefined);
      assert.equal(await huey.resume('bulk'), true);
      assert.equal(await held.get({ blocking: true, timeout: 10 }), 1);
    } finally {
      await consumer.stop();
      await huey.flush();
      await huey.close();
    }
  });

  it('waits, without spinning, while every queue a consumer serves is paused, and goes on when one resumes', async () => {
    const { huey, batch } = threeQueues(new RedisStorage(`allpaused${++instances}`, { url: redis.url }));
    const consumer = new Consumer(huey, { workers: 1, queues: ['bulk'] });
    try {
      await huey.pause('bulk');
      await consumer.start();
      const held = batch(4);
      await held.enqueued;
      // A worker spinning on its paused queues would starve the event loop: no timer would fire.
      const ticks = await new Promise<number>((resolve) => {
        let n = 0;
        const timer = setInterval(() => ++n === 10 && (clearInterval(timer), resolve(n)), 50);
      });
      assert.equal(ticks, 10);
      assert.equal(await huey.pendingCount('bulk'), 1);
      await huey.resume('bulk');
      assert.equal(await held.get({ blocking: true, timeout: 10 }), 4);
    } finally {
      await consumer.stop();
      await huey.flush();
      await huey.close();
    }
  });

  it('moves due delayed tasks of every queue it serves, each to its own queue', async () => {
    const { huey, urgent, batch } = threeQueues(new RedisStorage(`due${++instances}`, { url: redis.url }));
    const consumer = new Consumer(huey, { workers: 1, queues: ['bulk'], schedulerInterval: 0.5 });
    try {
      const later = batch.schedule({ args: [3], delay: 0.3 });
      const other = urgent.schedule({ args: [4], delay: 0.3 });
      await Promise.all([later.enqueued, other.enqueued]);
      await consumer.start();
      assert.equal(await later.get({ blocking: true, timeout: 10 }), 3);
      // The consumer does not serve `critical`: its delayed task stays in that queue's schedule.
      assert.equal(await huey.scheduledCount('critical'), 1);
      assert.equal(await other.get(), undefined);
    } finally {
      await consumer.stop();
      await huey.flush();
      await huey.close();
    }
  });

  it('adopts the claims a dead consumer left on a named queue', async () => {
    const { huey, batch } = threeQueues(new RedisStorage(`adopt${++instances}`, { url: redis.url }));
    const bulk = huey.storageFor('bulk');
    try {
      const started = batch(1);
      const ahead = batch(2);
      await Promise.all([started.enqueued, ahead.enqueued]);
      // A consumer that claimed both, started the first, and died: its lease runs out.
      const claims = await bulk.dequeueMany('dead.w1', 2);
      bulk.markStarted(claims[0]!);
      await bulk.renewLeases(['dead.w1'], 1);
      await sleep(20);
      const consumer = new Consumer(huey, { workers: 1, queues: ['bulk'] });
      await consumer.start();
      try {
        await assert.rejects(started.get({ blocking: true, timeout: 10 }), /WorkerDiedError/);
        assert.equal(await ahead.get({ blocking: true, timeout: 10 }), 2);
        // Its record says so too, on its queue.
        const record = (await started.status())!;
        assert.equal(record.state, 'failed');
        assert.equal(record.queue, 'bulk');
        assert.equal(record.error?.name, 'WorkerDiedError');
      } finally {
        await consumer.stop();
      }
    } finally {
      await huey.flush();
      await huey.close();
    }
  });

  it('spreads a sharded queue over its shards, and drains them all', async () => {
    const huey = new RedisHuey(`shards${++instances}`, { url: redis.url });
    huey.queue('events', { shards: 4 });
    const event = huey.task({ queue: 'events' })(function event(n: number) {
      return n * 2;
    });
    const consumer = new Consumer(huey, { workers: 4, queues: ['events'] });
    try {
      const results = Array.from({ length: 200 }, (_, n) => event(n));
      // A signature goes to its task's queue too.
      const signed = huey.enqueue(event.s(1000));
      await Promise.all([...results, signed].map((result) => result.enqueued));
      const perShard = await Promise.all(huey.queueStorages('events').map((storage) => storage.queueSize()));
      assert.equal(perShard.length, 4);
      assert.equal(perShard.reduce((a, b) => a + b, 0), 201);
      for (const count of perShard) assert.ok(count > 20, `each shard holds a share: ${perShard.join(', ')}`);
      assert.equal(await huey.pendingCount('events'), 201);
      await consumer.start();
      const values = await Promise.all(results.map((result) => result.get({ blocking: true, timeout: 30 })));
      assert.deepEqual(values, Array.from({ length: 200 }, (_, n) => n * 2));
      assert.equal(await signed.get({ blocking: true, timeout: 10 }), 2000);
      assert.equal(await huey.pendingCount('events'), 0);
    } finally {
      await consumer.stop();
      await huey.flush();
      await huey.close();
    }
  });

  it('refuses queue names that cannot be one, and shards declared twice differently', () => {
    const huey = new Huey('names');
    const noop = () => null;
    assert.throws(() => huey.task({ queue: 'a:b' })(noop), /queue must be a queue name/);
    assert.throws(() => huey.task({ queue: '', name: 'other' })(noop), ConfigurationError);
    assert.throws(() => huey.queue('q', { shards: 0 }), /shards of queue "q"/);
    huey.queue('q', { shards: 2 });
    assert.throws(() => huey.queue('q', { shards: 3 }), /already declared with 2/);
    assert.throws(() => new Consumer(huey, { queues: ['x', 'x'] }), /twice/);
    assert.throws(() => new Consumer(huey, { queues: ['bad name'] }), ConfigurationError);
    const add = huey.task()(function add(a: number, b: number) {
      return a + b;
    });
    assert.throws(() => add.schedule({ args: [1, 2], delay: 0, queue: 'no#shard' }), ConfigurationError);
    // A queue no module declares would be served by no consumer: refused at the call.
    assert.throws(() => add.schedule({ args: [1, 2], delay: 0, queue: 'adhoc' }), /queue "adhoc" is not declared: declare it with huey.queue\("adhoc"\)/);
    assert.throws(() => add.s(1, 2).with({ queue: 'adhoc' }) && huey.enqueue(add.s(1, 2).with({ queue: 'adhoc' })), /not declared/);
  });
});

describe('huey-consumer -Q', () => {
  let fixture: typeof import('./fixtures/queues.js');

  before(async () => {
    process.env.REDIS_URL = redis.url;
    fixture = await import('./fixtures/queues.js');
  });

  after(async () => {
    await fixture.huey.flush();
    await fixture.huey.close();
  });

  for (const workerType of ['async', 'process'] as const) {
    it(`serves the queues given, in that order (${workerType} workers)`, async () => {
      const { huey, urgent, plain, batch } = fixture;
      await huey.flush();
      const bulk = Array.from({ length: 4 }, () => batch());
      const normal = Array.from({ length: 4 }, () => plain());
      const critical = Array.from({ length: 4 }, () => urgent());
      await Promise.all([...bulk, ...normal, ...critical].map((result) => result.enqueued));
      const consumer = startConsumer(['test/fixtures/queues.huey', '-Q', 'critical,bulk', '-w', '1', '-k', workerType, '--prefetch-window', '0'], { REDIS_URL: redis.url });
      try {
        await consumer.waitFor(/consumer running with/);
        assert.match(consumer.output, /queues: critical, bulk \(in this order\)/);
        const order = async (results: typeof bulk) => Promise.all(results.map((result) => result.get({ blocking: true, timeout: 20 })));
        const [first, last] = [await order(critical), await order(bulk)];
        assert.ok(Math.max(...first) < Math.min(...last), `critical ran first: ${first} then ${last}`);
        // The default queue is not served.
        assert.equal(await huey.pendingCount(), 4);
        assert.equal(await normal[0]!.get(), undefined);
      } finally {
        consumer.child.kill('SIGTERM');
        await consumer.exited();
      }
    });
  }

  it('refuses a queue name that cannot be one', async () => {
    const consumer = startConsumer(['test/fixtures/queues.huey', '-Q', 'ok,not:this'], { REDIS_URL: redis.url });
    assert.equal(await consumer.exited(), 1);
    assert.match(consumer.output, /queues must be a queue name/);
  });
});

/** Run the `huey` admin command; resolves with its exit code and output. */
function admin(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['dist/cli/huey.js', ...args], { cwd: ROOT, env: { ...process.env, REDIS_URL: redis.url } }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('queues in the admin command, the dashboard and /metrics', () => {
  let fixture: typeof import('./fixtures/queues.js');

  before(async () => {
    process.env.REDIS_URL = redis.url;
    fixture = await import('./fixtures/queues.js');
    await fixture.huey.flush();
  });

  after(async () => {
    await fixture.huey.flush();
    await fixture.huey.close();
  });

  it('shows each queue, pauses one, and lists one', async () => {
    const { huey, urgent, plain, batch } = fixture;
    await Promise.all([urgent(), urgent(), plain(), batch.schedule({ args: [], delay: 3600 })].map((result) => result.enqueued));
    const listed = JSON.parse((await admin('queues', 'test/fixtures/queues.huey', '--json')).stdout) as Array<{ name: string; pending: number; scheduled: number }>;
    assert.deepEqual(
      listed.map((q) => [q.name, q.pending, q.scheduled]),
      [['default', 1, 0], ['critical', 2, 0], ['bulk', 0, 1]],
    );
    assert.match((await admin('queues', 'test/fixtures/queues.huey')).stdout, /^default  pending 1  scheduled 0 .*\ncritical  pending 2 /);

    const paused = await admin('pause', 'test/fixtures/queues.huey', '--queue', 'critical');
    assert.equal(paused.code, 0, paused.stderr);
    assert.equal(await huey.isPaused('critical'), true);
    assert.equal(await huey.isPaused(), false);
    const unknown = await admin('pause', 'test/fixtures/queues.huey', '-Q', 'nope');
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no queue nope: "fixture-queues" knows default, critical, bulk/);

    const pending = JSON.parse((await admin('pending', 'test/fixtures/queues.huey', '-Q', 'critical', '--json')).stdout) as Array<{ name: string }>;
    assert.deepEqual(pending.map((m) => m.name), ['urgent', 'urgent']);
    const all = JSON.parse((await admin('pending', 'test/fixtures/queues.huey', '--json')).stdout) as Array<{ name: string }>;
    assert.deepEqual(all.map((m) => m.name), ['plain', 'urgent', 'urgent']);

    const snapshot = await takeSnapshot(huey);
    assert.equal(snapshot.pending, 3);
    assert.equal(snapshot.scheduledCount, 1);
    assert.deepEqual(snapshot.queues.map((q) => [q.name, q.pending, q.paused]), [['default', 1, false], ['critical', 2, true], ['bulk', 0, false]]);
    assert.deepEqual(snapshot.pendingTasks.map((t) => ('queue' in t ? t.queue : null)), ['default', 'critical', 'critical']);
    const { text } = await prometheusText(snapshot);
    assert.match(text, /huey_queue_pending\{queue="critical"\} 2/);
    assert.match(text, /huey_queue_paused\{queue="critical"\} 1/);
    assert.match(text, /huey_queue_scheduled\{queue="bulk"\} 1/);
    assert.match(text, /huey_queue_depth 3/);

    const resumed = await admin('resume', 'test/fixtures/queues.huey', '--queue', 'critical');
    assert.match(resumed.stdout, /resumed queue critical/);
    const purged = await admin('purge', 'test/fixtures/queues.huey', '--queue', 'critical', '--yes');
    assert.match(purged.stdout, /dropped 2 pending/);
    assert.equal(await huey.pendingCount(), 1, 'the other queues keep theirs');
    await huey.flush();
  });

  it('migrates tasks enqueued before their task had a queue to that queue, and a dead letter on retry', async () => {
    const { huey } = fixture;
    const home = huey.storage;
    // As an older version of the app wrote them: urgent had no queue then.
    const old = (id: string, eta: number | null = null) => JSON.stringify({ id, name: 'urgent', args: [], retries: 0, retryDelay: 0, retryBackoff: 1, priority: 0, eta, expires: null });
    await home.enqueue(old('old-1'));
    await home.enqueue(JSON.stringify({ id: 'stays', name: 'plain', args: [], retries: 0, retryDelay: 0, retryBackoff: 1, priority: 0, eta: null, expires: null }));
    await home.enqueue(old('old-2'));
    await home.enqueue('not a message');
    await home.addToSchedule(old('old-later', Date.now() + 3_600_000), Date.now() + 3_600_000);
    await home.enqueue(old('dead-1'));
    await home.deadLetter((await home.dequeueMany('someone', 10)).find((claim) => claim.data.includes('dead-1'))!, 'set aside');
    await home.requeue('someone');

    const dry = await admin('migrate', 'test/fixtures/queues.huey', '--dry-run');
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /would move:\n  2 waiting task\(s\) default → critical\n  1 scheduled task\(s\) default → critical/);
    assert.equal(await huey.pendingCount(), 4, 'a dry run moves nothing');

    const moved = JSON.parse((await admin('migrate', 'test/fixtures/queues.huey', '--json')).stdout) as { queued: Record<string, number>; scheduled: Record<string, number> };
    assert.deepEqual(moved.queued, { 'default → critical': 2 });
    assert.deepEqual(moved.scheduled, { 'default → critical': 1 });
    assert.deepEqual((await huey.pending(10, 'critical')).map((m) => [m.id, m.queue]), [['old-1', 'critical'], ['old-2', 'critical']]);
    // What stays keeps its order, the unreadable item too.
    assert.deepEqual(await home.enqueuedItems(), [JSON.stringify({ id: 'stays', name: 'plain', args: [], retries: 0, retryDelay: 0, retryBackoff: 1, priority: 0, eta: null, expires: null }), 'not a message']);
    assert.deepEqual((await huey.scheduled(10, 'critical')).map((m) => m.id), ['old-later']);
    assert.equal(await huey.scheduledCount(), 0);
    assert.match((await admin('migrate', 'test/fixtures/queues.huey')).stdout, /nothing to move/);

    // The dead letter stays where it is until retried: then it goes to its task's queue.
    const retried = await admin('retry', 'test/fixtures/queues.huey', 'dead-1');
    assert.equal(retried.code, 0, retried.stderr);
    assert.equal(await home.deadLetterCount(), 0);
    assert.deepEqual((await huey.pending(10, 'critical')).map((m) => m.id), ['old-1', 'old-2', 'dead-1']);
    await huey.flush();
  });
});
