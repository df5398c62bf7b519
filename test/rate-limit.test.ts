import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RateLimitExceeded, RedisHuey } from '../src/index.js';
import { Worker } from '../src/consumer/worker.js';
import { startRedis, type TestRedis } from './support/redis-server.js';

let redis: TestRedis;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis.close();
});

const HOUR = 3600;

/** Two Huey instances of one app, as two consumers would have, each with its own registry. */
function app(ran: string[]) {
  const huey = new RedisHuey('rate-limited', { url: redis.url });
  const limit = huey.rateLimit('pings', { limit: 3, per: HOUR });
  const ping = huey.task()(
    limit(function ping(n: number) {
      ran.push(`ping ${n}`);
      return n;
    }),
  );
  class Mailer {
    @huey.task()
    @huey.rateLimit('mails', { limit: 1, per: HOUR })
    static async send(to: string): Promise<string> {
      ran.push(`mail ${to}`);
      return to;
    }
  }
  return { huey, ping, send: huey.taskOf(Mailer.send) };
}

describe('rate limits', () => {
  it('lets exactly `limit` runs through per window across consumers, and reschedules the rest to the next window', async () => {
    const ran: string[] = [];
    const one = app(ran);
    const two = app(ran);
    const rateLimited: string[] = [];
    for (const { huey } of [one, two]) huey.signal('rate-limited')((_, task) => void rateLimited.push(task.id));
    const results = Array.from({ length: 8 }, (_, n) => one.ping(n));
    const mails = [one.send('a@example.com'), one.send('b@example.com')];
    await Promise.all([...results, ...mails].map((r) => r.enqueued));

    const workers = [new Worker(one.huey, 'rl-1', { blockingTimeout: 0.1 }), new Worker(two.huey, 'rl-2', { blockingTimeout: 0.1 })];
    // Drain until nothing is waiting; the rescheduled runs sit in the schedule.
    while ((await one.huey.pendingCount()) > 0) await Promise.all(workers.map((w) => w.runOnce(100)));

    assert.equal(ran.filter((r) => r.startsWith('ping')).length, 3);
    assert.equal(ran.filter((r) => r.startsWith('mail')).length, 1);
    assert.equal(rateLimited.length, 6);
    const windowEnd = (Math.floor(Date.now() / (HOUR * 1000)) + 1) * HOUR * 1000;
    const scheduled = await one.huey.scheduled();
    assert.equal(scheduled.length, 6);
    for (const message of scheduled) assert.equal(message.eta, windowEnd);
    // Rescheduling used no retries, and the rescheduled runs keep their ids.
    assert.ok(scheduled.every((m) => m.retries === 0));
    assert.ok(scheduled.every((m) => rateLimited.includes(m.id)));
    await one.huey.flush();
    await Promise.all([one.huey.close(), two.huey.close()]);
  });

  it('rejects a run() over the limit with the time the next window opens', async () => {
    const huey = new RedisHuey('rate-run', { url: redis.url });
    const limit = huey.rateLimit('reports', { limit: 2, per: HOUR });
    assert.equal(await limit.run(() => 'one'), 'one');
    assert.equal(await limit.run(async () => 'two'), 'two');
    await assert.rejects(limit.run(() => 'three'), (error: unknown) => {
      assert.ok(error instanceof RateLimitExceeded);
      assert.equal(error.retryAt.getTime() % (HOUR * 1000), 0);
      assert.ok(error.retryAt.getTime() > Date.now());
      return true;
    });
    assert.throws(() => huey.rateLimit('bad', { limit: 0, per: 1 }), /whole positive `limit`/);
    await huey.flush();
    await huey.close();
  });
});
