import assert from 'node:assert/strict';
import fs, { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import { SqliteStorage } from '../src/index.js';
import { killAll, ROOT, runScript, startConsumer } from './support/processes.js';

// Issue 17: on SQLite a task enqueued into an idle queue starts promptly, not
// after the workers' polling backoff; waiting costs no timer once nobody waits.
//
// No bound here is tight: each compares a wake (ms) against a wait the old
// polling, or a missing wake-up, would have taken (tens of seconds).

const dir = mkdtempSync(join(tmpdir(), 'huey-sqlite-wake-'));
after(async () => {
  await killAll();
  rmSync(dir, { recursive: true, force: true });
});

let files = 0;
const freshFile = () => join(dir, `wake-${++files}.db`);

/** Run `fn` and give how long it took, in ms. */
async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const value = await fn();
  return [value, performance.now() - started];
}

/** Timers and handles that keep this process alive, by type. */
function activeResources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const type of process.getActiveResourcesInfo()) counts[type] = (counts[type] ?? 0) + 1;
  return counts;
}

describe('SqliteStorage waits for work', () => {
  it('is blocking, and wakes a waiting dequeue when another connection enqueues', async () => {
    const filename = freshFile();
    const consumer = new SqliteStorage('wake', { filename });
    const producer = new SqliteStorage('wake', { filename });
    assert.equal(consumer.blocking, true);
    await consumer.connect();
    await producer.connect();
    const [claim, ms] = await timed(async () => {
      const waiting = consumer.dequeue('w1', 60_000);
      await sleep(300);
      await producer.enqueue('from another connection');
      return waiting;
    });
    assert.equal(claim?.data, 'from another connection');
    assert.ok(ms < 20_000, `woken by the other connection's commit, not at the timeout (${ms.toFixed(0)} ms)`);
    await Promise.all([consumer.close(), producer.close()]);
  });

  it("still wakes on another connection's commit where the file cannot be watched", async (t) => {
    // No file events (fs.watch throws, as where watches run out): the waiter reads data_version on a timer instead.
    t.mock.method(fs, 'watch', () => {
      throw Object.assign(new Error('no watches left'), { code: 'ENOSPC' });
    });
    syncBuiltinESMExports();
    t.after(() => {
      t.mock.restoreAll();
      syncBuiltinESMExports();
    });
    const filename = freshFile();
    const consumer = new SqliteStorage('unwatched', { filename });
    const producer = new SqliteStorage('unwatched', { filename });
    await consumer.connect();
    await producer.connect();
    const [claim, ms] = await timed(async () => {
      const waiting = consumer.dequeue('w1', 60_000);
      await sleep(300);
      await producer.enqueue('seen by polling data_version');
      return waiting;
    });
    assert.equal(claim?.data, 'seen by polling data_version');
    assert.ok(ms < 20_000, `woken by the other connection's commit, not at the timeout (${ms.toFixed(0)} ms)`);
    assert.ok((fs.watch as unknown as { mock: { callCount(): number } }).mock.callCount() > 0, 'the file watch was tried');
    await Promise.all([consumer.close(), producer.close()]);
  });

  it('wakes waiters on enqueues, due tasks and requeues through the same instance', async () => {
    // This connection's own commits leave its data_version as it was: each of these must wake the waiters itself.
    const storage = new SqliteStorage('same', { filename: freshFile() });
    await storage.connect();
    const [claims, ms] = await timed(async () => {
      const first = storage.dequeueMany('w1', 10, 60_000);
      await sleep(100);
      await storage.enqueueMany([{ data: 'a' }, { data: 'b' }]);
      const many = await first;

      // A delayed task the scheduler moves onto the queue (enqueueDue), as the consumer's own scheduler does.
      const second = storage.dequeue('w2', 60_000);
      await storage.addToSchedule('due', Date.now() - 1);
      await sleep(100);
      const due = await storage.enqueueDue(Date.now());
      assert.equal(due.moved, 1);
      const moved = await second;

      // A claim put back by its worker.
      const third = storage.dequeue('w3', 60_000);
      await sleep(100);
      assert.equal(await storage.requeue('w2'), 1);
      const requeued = await third;
      return [many.map((claim) => claim.data), moved?.data, requeued?.data];
    });
    assert.deepEqual(claims, [['a', 'b'], 'due', 'due']);
    assert.ok(ms < 20_000, `each waiter woke at the change, not at its timeout (${ms.toFixed(0)} ms)`);
    await storage.close();
  });

  it('releases a waiting dequeue at close(), and leaves no timer behind', async () => {
    const storage = new SqliteStorage('close', { filename: freshFile() });
    await storage.connect();
    const before = activeResources();
    const waiting = timed(() => storage.dequeueMany('w1', 5, 60_000));
    await sleep(200);
    const [[claims, ms]] = await Promise.all([waiting, storage.close()]);
    assert.deepEqual(claims, []);
    assert.ok(ms < 10_000, `close() ended the wait at once, not at its 60 s timeout (${ms.toFixed(0)} ms)`);
    assert.deepEqual(activeResources(), before, 'nothing keeps the process alive once nobody waits');

    // A wait that times out leaves nothing either.
    const again = new SqliteStorage('close', { filename: freshFile() });
    await again.connect();
    assert.equal(await again.dequeue('w1', 100), null);
    assert.deepEqual(activeResources(), before);
    await again.close();
  });
});

describe('a consumer on SQLite', () => {
  // The consumer's and the producer's module: the built library, as huey-consumer loads it.
  const app = join(dir, 'app.mjs');
  writeFileSync(
    app,
    `import { SqliteHuey } from ${JSON.stringify(pathToFileURL(join(ROOT, 'dist/index.js')).href)};
export const huey = new SqliteHuey('wake', { filename: process.env.HUEY_SQLITE_FILE });
export const stamp = huey.task()(function stamp() {
  return Date.now();
});
`,
  );
  // Enqueues one task now and one delayed, each from this other process; prints when each was due and when it started.
  const producer = join(dir, 'producer.mjs');
  writeFileSync(
    producer,
    `import { huey, stamp } from './app.mjs';
const now = Date.now();
const started = await stamp().get({ blocking: true, timeout: 60 });
const eta = Date.now() + 1000;
const delayedStarted = await stamp.schedule({ args: [], eta: new Date(eta) }).get({ blocking: true, timeout: 60 });
console.log('LATENCY ' + JSON.stringify({ now: started - now, delayed: delayedStarted - eta }));
await huey.close();
`,
  );

  for (const workerType of ['async', 'process']) {
    it(`starts a task enqueued into an idle queue at once, not at the next poll (${workerType} workers)`, async () => {
      const env = { REDIS_URL: '', HUEY_SQLITE_FILE: freshFile() };
      // A polling worker would look once at start and then every 30 s.
      const consumer = startConsumer([`${app.slice(0, -'.mjs'.length)}.huey`, '-w', '2', '-k', workerType, '--delay', '30', '--max-delay', '30'], env);
      await consumer.waitFor(/consumer running with/);
      assert.match(consumer.output, /storage: sqlite, blocking dequeue/);
      await sleep(3000); // idle: a poller would now be well into its 30 s wait
      const run = await runScript(producer, env);
      assert.equal(run.code, 0, `${run.output}\n${consumer.output}`);
      const latency = JSON.parse(run.output.match(/LATENCY (.*)/)![1]!) as { now: number; delayed: number };
      // A poller would start the first no sooner than ~27 s after its enqueue; the delayed one waits for the scheduler (1 s) too.
      assert.ok(latency.now < 10_000, `started ${latency.now} ms after its enqueue`);
      assert.ok(latency.delayed < 12_000, `started ${latency.delayed} ms after it was due`);
      consumer.child.kill('SIGTERM');
      assert.equal(await consumer.exited(), 0, consumer.output);
    });
  }
});
