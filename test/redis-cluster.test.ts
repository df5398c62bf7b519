import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PriorityRedisStorage, RedisHuey, RedisStorage } from '../src/index.js';
import { Consumer, Worker } from '../src/consumer/index.js';
import { failoverDrill } from './support/failover.js';
import { startCluster, type TestCluster } from './support/redis-cluster.js';
import { namedQueueStorage, storageConformance } from './support/storage-conformance.js';

// Six nodes of the test's own (three masters, a replica each); the failover test kills a master.

let cluster: TestCluster;
before(async () => {
  cluster = await startCluster();
});
after(async () => {
  await cluster?.close();
});

const options = () => ({ rootNodes: cluster.rootNodes });

storageConformance('redis cluster', async () => new RedisStorage('conformance', { cluster: options() }), { peeksWithClaims: true });
storageConformance('priority redis cluster', async () => new PriorityRedisStorage('pconformance', { cluster: options() }), { peeksWithClaims: true });
// A named queue's storage: its own hash tag, on whichever master holds that slot, over the instance's cluster client.
storageConformance('redis cluster named queue', async () => namedQueueStorage(new RedisStorage('qconformance', { cluster: options() }), 'mail'), { peeksWithClaims: true });

/** An instance name whose `queues` (or shards: `events`, `events#1`, ...) all hash to slots on different masters. */
async function spreadName(prefix: string, queues: string[]): Promise<string> {
  for (let i = 0; i < 500; i++) {
    const name = `${prefix}-${i}`;
    const masters = new Set<number | null>();
    for (const queue of queues) masters.add(await cluster.masterOfSlot(await cluster.keySlot(`huey.{${name}:${queue}}.queue`)));
    if (masters.size === queues.length && !masters.has(null)) return name;
  }
  throw new Error('no name spreads the queues over the masters');
}

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

  it('spreads an instance\'s queues over the masters, and serves them in order with no CROSSSLOT', async () => {
    const name = await spreadName('spread', ['critical', 'default-ish', 'bulk']);
    const huey = new RedisHuey(name, { cluster: options() });
    const ran: string[] = [];
    const tasks = ['critical', 'default-ish', 'bulk'].map((queue) =>
      huey.task({ queue, name: `on-${queue}` })((n: number) => {
        ran.push(`${queue}${n}`);
        return n;
      }),
    );
    try {
      const results = [];
      for (const task of [...tasks].reverse()) for (let n = 0; n < 3; n++) results.push(task(n));
      await Promise.all(results.map((result) => result.enqueued));
      // Each queue's keys are on a master of their own.
      const masters = await Promise.all(['critical', 'default-ish', 'bulk'].map(async (queue) => cluster.masterOfSlot(await cluster.keySlot(`huey.{${name}:${queue}}.queue`))));
      assert.equal(new Set(masters).size, 3);
      const worker = new Worker(huey, 'spread-worker', { queues: ['critical', 'default-ish', 'bulk'], prefetchWindow: 0 });
      while ((await worker.runOnce(0)) > 0);
      assert.deepEqual(ran, ['critical0', 'critical1', 'critical2', 'default-ish0', 'default-ish1', 'default-ish2', 'bulk0', 'bulk1', 'bulk2']);
      assert.deepEqual(await Promise.all(results.map((result) => result.get())), [0, 1, 2, 0, 1, 2, 0, 1, 2]);
      // Whole-instance state (revocation, locks, pause flags, counters) stays in the instance's slot.
      await huey.pause('bulk');
      assert.equal(await huey.isPaused('bulk'), true);
      await huey.resume('bulk');
    } finally {
      await huey.flush();
      await huey.close();
    }
  });

  it('spreads a sharded queue over three masters, and a consumer drains every shard', async () => {
    const name = await spreadName('sharded', ['events', 'events#1', 'events#2']);
    const huey = new RedisHuey(name, { cluster: options() });
    huey.queue('events', { shards: 3 });
    const event = huey.task({ queue: 'events' })(function event(n: number) {
      return n + 1;
    });
    const consumer = new Consumer(huey, { workers: 4, queues: ['events'] });
    try {
      const results = Array.from({ length: 150 }, (_, n) => event(n));
      await Promise.all(results.map((result) => result.enqueued));
      const perShard = await Promise.all(huey.queueStorages('events').map((storage) => storage.queueSize()));
      assert.equal(perShard.reduce((a, b) => a + b, 0), 150);
      for (const count of perShard) assert.ok(count > 20, `each shard holds a share: ${perShard.join(', ')}`);
      await consumer.start();
      assert.deepEqual(await Promise.all(results.map((result) => result.get({ blocking: true, timeout: 30 }))), Array.from({ length: 150 }, (_, n) => n + 1));
    } finally {
      await consumer.stop();
      await huey.flush();
      await huey.close();
    }
  });

  it('carries on through the failover of the master holding the instance, with no restart', async () => {
    let killed: number | null = null;
    let slot = -1;
    const report = await failoverDrill({
      connection: (onError) => ({ cluster: options(), onError }),
      workerId: 'cluster-worker',
      deadline: 120_000,
      killMaster: async (storage) => {
        slot = await cluster.keySlot((storage as RedisStorage).keys.queue);
        killed = await cluster.masterOfSlot(slot);
        await cluster.nodes.find((node) => node.port === killed)!.stop(true);
      },
      promoted: async () => {
        const master = await cluster.masterOfSlot(slot);
        return master !== null && master !== killed;
      },
    });
    assert.ok(report.accepted > 0);
  });
});
