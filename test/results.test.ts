import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClient } from '@redis/client';
import { RedisHuey } from '../src/index.js';
import { Consumer } from '../src/consumer/consumer.js';
import { startRedis, type TestRedis } from './support/redis-server.js';

let redis: TestRedis;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis.close();
});

describe('results through the consumer', () => {
  it('keeps results for their time to live, and wakes a blocking get without polling', async () => {
    const huey = new RedisHuey('results-ttl', { url: redis.url, resultTtl: 1 });
    const add = huey.task()(function add(a: number, b: number) {
      return a + b;
    });
    const consumer = new Consumer(huey, { workers: 2 });
    await consumer.start();

    const monitor = createClient({ url: redis.url });
    await monitor.connect();
    await monitor.configResetStat();
    const waited = add(1, 2);
    assert.equal(await waited.get({ blocking: true, timeout: 5 }), 3);
    // Woken by the notice, the waiter read the result once or twice, not every few milliseconds.
    const stats = await monitor.info('commandstats');
    const evalsha = Number(/cmdstat_evalsha:calls=(\d+)/.exec(stats)?.[1] ?? 0);
    assert.ok(evalsha < 20, `a blocking get made ${evalsha} script calls`);

    const unread = add(2, 2);
    const preserved = add(3, 3);
    assert.equal(await preserved.get({ blocking: true, timeout: 5, preserve: true }), 6);
    assert.equal(await huey.result<number>(preserved.id).get({ preserve: true }), 6, 'preserve leaves it for another reader');
    await unread.enqueued;
    const deadline = Date.now() + 5000;
    while ((await huey.storage.peekData(unread.id)) !== null || (await huey.storage.peekData(preserved.id)) !== null) {
      assert.ok(Date.now() < deadline, 'unread results expire after resultTtl');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(await huey.result(unread.id).get(), undefined);
    await monitor.close();
    await consumer.stop();
  });

  it('stores undefined results only with storeNone', async () => {
    const huey = new RedisHuey('results-none', { url: redis.url, storeNone: true });
    const nothing = huey.task()(function nothing() {
      return undefined;
    });
    const consumer = new Consumer(huey, { workers: 1 });
    await consumer.start();
    const r = nothing();
    await r.enqueued;
    const deadline = Date.now() + 5000;
    while (!(await huey.storage.hasDataForKey(r.id))) {
      assert.ok(Date.now() < deadline, 'an undefined result is stored with storeNone');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(await r.get(), undefined);
    assert.equal(await huey.storage.hasDataForKey(r.id), false, 'reading popped it');
    await consumer.stop();
  });
});
