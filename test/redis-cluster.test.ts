import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PriorityRedisStorage, RedisHuey, RedisStorage } from '../src/index.js';
import { Worker } from '../src/consumer/worker.js';
import { startCluster, type TestCluster } from './support/redis-cluster.js';
import { storageConformance } from './support/storage-conformance.js';

// Six nodes of the test's own (three masters, a replica each); the failover test kills a master.

let cluster: TestCluster;
before(async () => {
  cluster = await startCluster();
});
after(async () => {
  await cluster?.close();
});

const options = () => ({ rootNodes: cluster.rootNodes });

storageConformance('redis cluster', async () => new RedisStorage('conformance', { cluster: options() }));
storageConformance('priority redis cluster', async () => new PriorityRedisStorage('pconformance', { cluster: options() }));

describe('redis cluster', () => {
  it('runs every operation on the master of the instance slot, and has no single client', async () => {
    const storage = new RedisStorage('described', { cluster: options() });
    try {
      assert.throws(() => storage.client, /connected to a Cluster has no single client/);
      await storage.connect();
      const slot = await cluster.keySlot(storage.keys.queue);
      const master = await cluster.masterOfSlot(slot);
      // Keyless commands (used by the storage for TIME, CONFIG GET and SCAN) reach that master.
      const port = await storage.connection.run(async (client) => Number(/tcp_port:(\d+)/.exec(await client.info('server'))![1]));
      assert.equal(port, master);
      await storage.enqueue('x');
      assert.equal(await storage.queueSize(), 1);
      await storage.putResult('r', 'v', 60_000);
      assert.deepEqual(await storage.resultItems(), { r: 'v' });
      await storage.flushResults();
      assert.deepEqual(await storage.resultItems(), {});
      await storage.flushAll();
      assert.equal(await storage.queueSize(), 0);
      assert.deepEqual(await storage.setupWarnings(), []);
    } finally {
      await storage.close();
    }
  });

  it('serves two instances in different slots at once', async () => {
    // Names whose slots lie on different masters.
    const names: string[] = [];
    const masters = new Set<number | null>();
    for (let i = 0; names.length < 2 && i < 100; i++) {
      const name = `two-${i}`;
      const master = await cluster.masterOfSlot(await cluster.keySlot(`huey.{${name}}.queue`));
      if (!masters.has(master)) {
        masters.add(master);
        names.push(name);
      }
    }
    assert.equal(names.length, 2);
    const hueys = names.map((name) => new RedisHuey(name, { cluster: options() }));
    const doubles = hueys.map((huey, i) =>
      huey.task()(function double(x: number) {
        return x * 2 + i;
      }),
    );
    const workers = hueys.map((huey, i) => new Worker(huey, `two-worker-${i}`, { blockingTimeout: 0.2 }));
    const running = workers.map((w) => w.run());
    try {
      const values = await Promise.all(doubles.map((double) => Promise.all(Array.from({ length: 20 }, (_, x) => double(x).get({ blocking: true, timeout: 30 })))));
      values.forEach((vs, i) =>
        assert.deepEqual(
          vs,
          Array.from({ length: 20 }, (_, x) => x * 2 + i),
        ),
      );
    } finally {
      workers.forEach((w) => w.stop());
      await Promise.all(running);
      for (const huey of hueys) {
        await huey.storage.flushAll();
        await huey.close();
      }
    }
  });
});
