import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PriorityRedisHuey } from '../src/index.js';
import { Consumer } from '../src/consumer/consumer.js';
import { startRedis, type TestRedis } from './support/redis-server.js';

let redis: TestRedis;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis.close();
});

describe('priorities through the consumer', () => {
  it('runs higher priority first, per task and per call, and equal priorities in order', async () => {
    const huey = new PriorityRedisHuey('priorities', { url: redis.url });
    const ran: string[] = [];
    const record = huey.task()(function record(label: string) {
      ran.push(label);
      return label;
    });
    const urgent = huey.task({ priority: 50 })(function urgent(label: string) {
      ran.push(label);
      return label;
    });
    const results = [
      record('normal-1'),
      record.schedule({ args: ['high-1'], delay: 0, priority: 10 }),
      urgent('urgent'),
      record('normal-2'),
      record.schedule({ args: ['high-2'], delay: 0, priority: 10 }),
      record.schedule({ args: ['low'], delay: 0, priority: -1 }),
    ];
    await Promise.all(results.map((r) => r.enqueued));
    assert.deepEqual((await huey.pending()).map((m) => m.args[0]), ['urgent', 'high-1', 'high-2', 'normal-1', 'normal-2', 'low']);

    const consumer = new Consumer(huey, { workers: 1 });
    await consumer.start();
    for (const r of results) await r.get({ blocking: true, timeout: 5 });
    await consumer.stop();
    assert.deepEqual(ran, ['urgent', 'high-1', 'high-2', 'normal-1', 'normal-2', 'low']);
  });
});
