import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DateTime } from 'luxon';
import { RedisHuey } from '../src/index.js';
import { Consumer } from '../src/consumer/consumer.js';
import { Scheduler } from '../src/consumer/scheduler.js';
import { startRedis, type TestRedis } from './support/redis-server.js';

let redis: TestRedis;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis.close();
});

const MINUTE = 60_000;
const at = (iso: string) => Date.parse(iso);

describe('Scheduler', () => {
  it('moves due delayed tasks onto the queue and leaves the rest', async () => {
    const huey = new RedisHuey('sched-delayed', { url: redis.url });
    const add = huey.task()(function add(a: number, b: number) {
      return a + b;
    });
    // Enqueueing compares etas with the real clock, so this test's clock starts at it.
    let now = Date.now();
    const scheduler = new Scheduler(huey, { periodic: false, now: () => now });
    const soon = add.schedule({ args: [1, 2], eta: new Date(now + 5_000) });
    const later = add.schedule({ args: [3, 4], eta: new Date(now + 3_600_000) });
    await Promise.all([soon.enqueued, later.enqueued]);
    await scheduler.tick();
    assert.equal(await huey.pendingCount(), 0);
    now += 5_000;
    await scheduler.tick();
    assert.deepEqual((await huey.pending()).map((m) => m.id), [soon.id]);
    assert.deepEqual((await huey.scheduled()).map((m) => m.id), [later.id]);
    await huey.flush();
    await huey.close();
  });

  it('enqueues a periodic task once per matching minute, even with several schedulers', async () => {
    const huey = new RedisHuey('sched-periodic', { url: redis.url });
    const seen: string[] = [];
    const everyEvenMinute = (minute: DateTime) => {
      seen.push(minute.toISO()!);
      return minute.minute % 2 === 0;
    };
    huey.periodicTask(everyEvenMinute)(function tick() {
      return 'tock';
    });
    let now = at('2026-03-01T10:00:30Z');
    const schedulers = [1, 2, 3].map(() => new Scheduler(huey, { now: () => now }));

    await Promise.all(schedulers.map((s) => s.tick()));
    assert.equal(await huey.pendingCount(), 1, 'three schedulers, one enqueue');
    assert.equal(seen[0], '2026-03-01T10:00:00.000Z', 'the schedule sees the start of the minute in UTC');

    now += 15_000; // same minute: nothing more
    await Promise.all(schedulers.map((s) => s.tick()));
    assert.equal(await huey.pendingCount(), 1);

    now += MINUTE; // 10:01, odd: not due
    await Promise.all(schedulers.map((s) => s.tick()));
    assert.equal(await huey.pendingCount(), 1);

    now += MINUTE; // 10:02
    await Promise.all(schedulers.map((s) => s.tick()));
    assert.equal(await huey.pendingCount(), 2);

    // A scheduler that starts late in the same minute does not enqueue it again.
    await new Scheduler(huey, { now: () => now }).tick();
    assert.equal(await huey.pendingCount(), 2);
    assert.deepEqual((await huey.pending()).map((m) => m.name), ['tick', 'tick']);
    await huey.flush();
    await huey.close();
  });

  it('runs periodic tasks through a consumer with an injected clock', async () => {
    const huey = new RedisHuey('sched-consumer', { url: redis.url });
    const ran: string[] = [];
    huey.periodicTask(() => true, { context: true })(function heartbeat(task) {
      ran.push(task.id);
    });
    let now = at('2026-03-01T12:00:10Z');
    const consumer = new Consumer(huey, { workers: 2, schedulerInterval: 0.05, now: () => now });
    await consumer.start();
    const deadline = Date.now() + 5000;
    while (ran.length < 1) {
      assert.ok(Date.now() < deadline, 'the periodic task ran');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    now += MINUTE;
    while (ran.length < 2) {
      assert.ok(Date.now() < deadline, 'it ran again the next minute');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await consumer.stop();
    assert.equal(ran.length, 2);
    assert.notEqual(ran[0], ran[1]);
  });
});
