import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RateLimitExceeded, RedisHuey, TaskError } from '../src/index.js';
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

  it('counts the runs of the current window, and lets a reset free it again', async () => {
    const huey = new RedisHuey('rate-reset', { url: redis.url });
    const ran: number[] = [];
    const limit = huey.rateLimit('syncs', { limit: 2, per: HOUR });
    const sync = huey.task()(limit(function sync(n: number) {
      ran.push(n);
    }));
    const worker = new Worker(huey, 'reset-1', { blockingTimeout: 0.1 });
    const drain = async () => {
      while ((await huey.pendingCount()) > 0) await worker.runOnce(100);
    };
    assert.equal(await limit.currentUsage(), 0);
    await Promise.all([sync(1), sync(2), sync(3)].map((r) => r.enqueued));
    await drain();
    assert.deepEqual(ran, [1, 2]);
    assert.equal(await limit.currentUsage(), 2, 'the refused third run is not counted');
    assert.equal(await huey.scheduledCount(), 1);

    await limit.reset();
    assert.equal(await limit.currentUsage(), 0);
    await Promise.all([sync(4), sync(5), sync(6)].map((r) => r.enqueued));
    await drain();
    assert.deepEqual(ran, [1, 2, 4, 5], 'two more runs in the same window');
    assert.equal(await limit.currentUsage(), 2);
    assert.equal(await huey.scheduledCount(), 2);
    // The count is a counter, not data: it never shows among the results.
    assert.deepEqual(Object.keys(await huey.storage.resultItems()).filter((key) => key.startsWith('ratelimit.')), []);
    await huey.flush();
    await huey.close();
  });

  /** A task over `{ limit: 1, per: HOUR, ...options }` with `retries`, two calls of it run by one worker, and every signal of each call in order. */
  async function overLimit(name: string, options: { retry?: boolean }, retries: number) {
    const huey = new RedisHuey(name, { url: redis.url });
    const limit = huey.rateLimit('charges', { limit: 1, per: HOUR, ...options });
    const charge = huey.task({ retries })(limit(function charge(n: number) {
      return n;
    }));
    const signals = new Map<string, string[]>();
    huey.signal('rate-limited', 'retrying', 'scheduled', 'error', 'complete')((signal, task) => {
      signals.set(task.id, [...(signals.get(task.id) ?? []), signal]);
    });
    const calls = [charge(1), charge(2)];
    await Promise.all(calls.map((r) => r.enqueued));
    const worker = new Worker(huey, `${name}-1`, { blockingTimeout: 0.1 });
    while ((await huey.pendingCount()) > 0) await worker.runOnce(100);
    // Which call the limit let through is up to the worker; the other is the one refused.
    const [passed, refused] = signals.get(calls[0]!.id)?.includes('complete') ? calls : [calls[1]!, calls[0]!];
    assert.deepEqual(signals.get(passed!.id), ['complete']);
    return { huey, limit, passed: passed!, refused: refused!, signals: signals.get(refused!.id) ?? [] };
  }

  /** The TaskError a refused call's result rejects with names the limit's error. */
  const rateLimitFailure = (error: unknown) => {
    assert.ok(error instanceof TaskError);
    assert.equal(error.remote.name, 'RateLimitExceeded');
    assert.match(error.message, /rate limit "charges" is exceeded/);
    return true;
  };

  it('signals rate-limited, retrying, then scheduled as a refused run goes to the next window', async () => {
    const { huey, refused, signals } = await overLimit('rate-order', {}, 0);
    assert.deepEqual(signals, ['rate-limited', 'retrying', 'scheduled']);
    assert.deepEqual((await huey.scheduled()).map((message) => message.id), [refused.id]);
    await huey.flush();
    await huey.close();
  });

  it('fails a run over a limit with retry: false as any error, when it has no retries left', async () => {
    const { huey, limit, passed, refused, signals } = await overLimit('rate-no-retry', { retry: false }, 0);
    assert.equal(limit.options.retry, false);
    assert.deepEqual(signals, ['rate-limited']);
    assert.equal(await huey.scheduledCount(), 0, 'no copy waits for the next window');
    assert.ok([1, 2].includes((await passed.get({ blocking: true, timeout: 10 })) as number));
    await assert.rejects(refused.get({ blocking: true, timeout: 10 }), rateLimitFailure);
    await huey.flush();
    await huey.close();
  });

  it('uses a retry for a run over a limit with retry: false, then fails it', async () => {
    const { huey, refused, signals } = await overLimit('rate-no-retry-retries', { retry: false }, 1);
    // Refused, retried at once with its one retry, refused again, failed for good.
    assert.deepEqual(signals, ['rate-limited', 'retrying', 'rate-limited']);
    assert.equal(await huey.scheduledCount(), 0);
    await assert.rejects(refused.get({ blocking: true, timeout: 10 }), rateLimitFailure);
    await huey.flush();
    await huey.close();
  });
});
