import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClient } from '@redis/client';
import { RedisStorage } from '../src/index.js';
import { startRedis, type TestRedis } from './support/redis-server.js';
import { storageConformance } from './support/storage-conformance.js';

let redis: TestRedis;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis.close();
});

storageConformance('redis', async () => new RedisStorage('conformance', { url: redis.url }), { peeksWithClaims: true });

describe('redis key layout', () => {
  it('prefixes every key with the instance name in one hash tag', async () => {
    const storage = new RedisStorage('layout', { url: redis.url });
    await storage.enqueue('a');
    await storage.enqueue('b');
    await storage.dequeue('w1');
    await storage.addToSchedule('s', 1);
    await storage.putData('k', 'v');
    await storage.putResult('t', 'v', 60_000);
    await storage.increment('enqueued.task');
    await storage.deadLetter((await storage.dequeue('w1'))!, 'test');
    await storage.enqueue('c');
    const client = createClient({ url: redis.url });
    await client.connect();
    const keys = (await client.keys('*')).filter((k) => k.includes('{layout}')).sort();
    assert.deepEqual(keys, [
      'huey.{layout}.claimed.w1',
      'huey.{layout}.counters',
      'huey.{layout}.dead',
      'huey.{layout}.queue',
      'huey.{layout}.result.t',
      'huey.{layout}.results',
      'huey.{layout}.results.expiry',
      'huey.{layout}.schedule',
    ]);
    assert.equal(await client.type('huey.{layout}.queue'), 'list');
    assert.equal(await client.type('huey.{layout}.schedule'), 'zset');
    assert.equal(await client.type('huey.{layout}.results'), 'hash');
    assert.equal(await client.type('huey.{layout}.counters'), 'hash');
    assert.equal(await client.type('huey.{layout}.result.t'), 'string');
    assert.equal(await client.type('huey.{layout}.results.expiry'), 'zset');
    await storage.flushAll();
    assert.deepEqual((await client.keys('*')).filter((k) => k.includes('{layout}')), []);
    await client.close();
    await storage.close();
  });

  it('keeps two apps on one Redis apart', async () => {
    const one = new RedisStorage('app-one', { url: redis.url });
    const two = new RedisStorage('app-two', { url: redis.url });
    await one.enqueue('for one');
    await one.putData('k', '1');
    assert.equal(await two.queueSize(), 0);
    assert.equal(await two.peekData('k'), null);
    await two.flushAll();
    assert.equal(await one.queueSize(), 1);
    await one.flushAll();
    await Promise.all([one.close(), two.close()]);
  });

  it('refuses a name that would break the hash tag', () => {
    assert.throws(() => new RedisStorage('bad{name}'), /instance name must be 1 to 64 letters, digits/);
  });

  it('runs its scripts again after Redis forgets them', async () => {
    const storage = new RedisStorage('noscript', { url: redis.url });
    await storage.putData('k', 'v');
    assert.equal(await storage.popData('k'), 'v');
    await storage.client.sendCommand(['SCRIPT', 'FLUSH']);
    await storage.putData('k', 'w');
    assert.equal(await storage.popData('k'), 'w');
    await storage.close();
  });

  it('says clearly when Redis cannot be reached', async () => {
    const storage = new RedisStorage('down', { url: 'redis://127.0.0.1:1', clientOptions: { socket: { reconnectStrategy: false } } });
    await assert.rejects(storage.enqueue('x'), /cannot connect to Redis at redis:\/\/127.0.0.1:1/);
    await storage.close();
  });
});
