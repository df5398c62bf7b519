import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PriorityRedisStorage, RedisStorage } from '../src/index.js';
import { startSentinels, type TestSentinels } from './support/redis-sentinel.js';
import { failoverDrill } from './support/failover.js';
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

storageConformance('redis via sentinel', async () => new RedisStorage('conformance', { sentinel: sentinel() }), { peeksWithClaims: true });
storageConformance('priority redis via sentinel', async () => new PriorityRedisStorage('pconformance', { sentinel: sentinel() }), { peeksWithClaims: true });

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
    await failoverDrill({
      connection: (onError) => ({ sentinel: sentinel(), onError }),
      workerId: 'sentinel-worker',
      deadline: 120_000,
      killMaster: () => cluster.master.stop(true),
      promoted: async () => (await cluster.masterPort()) === cluster.replica.port,
    });
  });
});
