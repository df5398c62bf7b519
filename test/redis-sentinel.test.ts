import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { PriorityRedisStorage, RedisHuey, RedisStorage } from '../src/index.js';
import { Worker } from '../src/consumer/worker.js';
import { startSentinels, until, type TestSentinels } from './support/redis-sentinel.js';
import { storageConformance } from './support/storage-conformance.js';

// A master, a replica and three sentinels of the test's own; the failover test kills the master.

let cluster: TestSentinels;
before(async () => {
  cluster = await startSentinels();
});
after(async () => {
  await cluster?.close();
});

const sentinel = () => ({ name: cluster.name, sentinelRootNodes: cluster.rootNodes });

storageConformance('redis via sentinel', async () => new RedisStorage('conformance', { sentinel: sentinel() }));
storageConformance('priority redis via sentinel', async () => new PriorityRedisStorage('pconformance', { sentinel: sentinel() }));

describe('redis via sentinel', () => {
  it('names the sentinel master in its errors and has no single client', async () => {
    const storage = new RedisStorage('described', { sentinel: sentinel() });
    try {
      assert.throws(() => storage.client, /connected through Sentinel has no single client/);
      await storage.connect();
      assert.equal(await storage.connection.run((client) => client.sendCommand(['PING'])), 'PONG');
      await storage.enqueue('x');
      assert.equal(await storage.queueSize(), 1);
      await storage.flushAll();
    } finally {
      await storage.close();
    }
  });

  // Keep this last: it kills the master.
  it('keeps a producer and a worker going through a failover', { timeout: 240_000 }, async () => {
    const name = `failover-${randomUUID().slice(0, 8)}`;
    const errors: string[] = [];
    const options = { sentinel: sentinel(), onError: (error: Error) => errors.push(error.message) };
    const producer = new RedisHuey(name, options);
    const consumer = new RedisHuey(name, options);
    const runs = new Map<number, number>();
    const define = (huey: RedisHuey) =>
      huey.task()(function record(i: number) {
        if (huey === consumer) runs.set(i, (runs.get(i) ?? 0) + 1);
        return i * 2;
      });
    const record = define(producer);
    define(consumer);
    const worker = new Worker(consumer, 'sentinel-worker', { blockingTimeout: 0.2 });
    const running = worker.run();
    const started = Date.now();
    const timings: Record<string, number> = {};
    let next = 0;
    const accepted: number[] = []; // enqueues Redis acknowledged
    const refused: number[] = []; // enqueues that failed (the producer knows they did not happen)
    const enqueue = async (i: number) => {
      try {
        await record(i).enqueued;
        accepted.push(i);
      } catch {
        refused.push(i);
      }
    };
    const allRan = (ids: number[]) => () => Promise.resolve(ids.every((i) => runs.has(i)));

    try {
      // Before: a batch goes through.
      const before = Array.from({ length: 30 }, () => next++);
      await Promise.all(before.map(enqueue));
      assert.equal(refused.length, 0);
      await until('the first batch to run', allRan(before), 60_000);
      assert.equal(await record(-1).get({ blocking: true, timeout: 30 }), -2);
      timings.warmUp = Date.now() - started;

      // During: a steady trickle of enqueues while the master dies and Sentinel promotes the replica.
      let producing = true;
      // Not awaited one by one: enqueues keep being made while earlier ones wait out the failover.
      const pending: Array<Promise<void>> = [];
      const trickle = (async () => {
        while (producing) {
          pending.push(enqueue(next++));
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        await Promise.all(pending);
      })();
      await until('the worker to be busy', () => Promise.resolve(runs.size > before.length + 20), 60_000, 20);
      const killedAt = Date.now();
      await cluster.master.stop(true);
      await until('Sentinel to promote the replica', async () => (await cluster.masterPort()) === cluster.replica.port, 120_000, 200);
      timings.promotion = Date.now() - killedAt;
      // Keep producing a little on the new master, then stop the trickle.
      const afterPromotion = next;
      await until('enqueues to succeed on the new master', () => Promise.resolve(accepted.some((i) => i >= afterPromotion)), 120_000, 50);
      timings.firstEnqueueAfterPromotion = Date.now() - killedAt;
      producing = false;
      await trickle;

      // After: a fresh batch completes, and its results are readable, with no restart.
      const later = Array.from({ length: 30 }, () => next++);
      const results = later.map((i) => record(i));
      for (const result of results) await result.enqueued;
      const values = await Promise.all(results.map((result) => result.get({ blocking: true, timeout: 120 })));
      assert.deepEqual(
        values,
        later.map((i) => i * 2),
      );
      timings.recovered = Date.now() - killedAt;

      // Let whatever was accepted and survived finish, then count.
      const survivors = await until(
        'the queue to drain',
        async () => ((await producer.storage.queueSize()) === 0 ? true : undefined),
        120_000,
        200,
      );
      assert.ok(survivors);
      await until('the worker to finish what it holds', async () => {
        const claimed = await producer.storage.claimed('sentinel-worker');
        return claimed.length === 0;
      });
      const lost = accepted.filter((i) => !runs.has(i));
      const twice = [...runs].filter(([, count]) => count > 1).map(([i]) => i);
      const report = {
        timings,
        enqueued: accepted.length + refused.length,
        accepted: accepted.length,
        refusedDuringFailover: refused.length,
        acceptedButLost: lost.length,
        lostIds: lost,
        ranTwice: twice.length,
        ranTwiceIds: twice,
        clientErrors: errors.length,
      };
      console.log(`# failover report: ${JSON.stringify(report)}`);
      // Asynchronous replication may lose the last writes before the kill: count, do not forbid.
      // But the tasks after the failover all ran (asserted above), and the loss is bounded.
      assert.ok(lost.length < accepted.length / 2, `too many lost: ${lost.length}`);
    } finally {
      worker.stop();
      await running;
      await Promise.all([producer.close(), consumer.close()]);
    }
  });
});
