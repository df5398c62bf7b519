import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { group, RedisHuey, RedisKeys, RedisStorage, TaskError } from '../src/index.js';
import { Consumer } from '../src/consumer/consumer.js';
import { startRedis, type TestRedis } from './support/redis-server.js';

// Poison messages (issue 15, item 5): a message whose follow-up (next step,
// error handler, chord callback) cannot be enqueued is settled once, as the
// task's own failure, and never stops the messages queued behind it.

const LIMIT = 64 * 1024;
let redis: TestRedis;
let huey: RedisHuey;
let tasks: ReturnType<typeof defineTasks>;

/** How many times each tag's task body ran, in this process (the consumer's workers are async). */
const runs = new Map<string, number>();
const handled: Array<[string, TaskError]> = [];

function ran(tag: string): void {
  runs.set(tag, (runs.get(tag) ?? 0) + 1);
}

function defineTasks() {
  const big = huey.task()(function big(tag: string, size: number) {
    ran(tag);
    return 'x'.repeat(size);
  });
  const measure = huey.task()(function measure(...values: unknown[]) {
    return JSON.stringify(values).length;
  });
  const counted = huey.task()(function counted(tag: string) {
    ran(tag);
    return tag;
  });
  const explode = huey.task()(function explode(tag: string): string {
    ran(tag);
    throw new Error(`${tag} exploded`);
  });
  const handler = huey.task()(function handler(tag: string, error: TaskError) {
    handled.push([tag, error]);
    return 'handled';
  });
  const double = huey.task()(function double(n: number) {
    return n * 2;
  });
  return { big, measure, counted, explode, handler, double };
}

before(async () => {
  redis = await startRedis();
  huey = new RedisHuey('poison', { url: redis.url, maxPayloadSize: LIMIT });
  tasks = defineTasks();
});
after(async () => {
  await huey.flush();
  await huey.close();
  await redis.close();
});

async function startConsumer(): Promise<Consumer> {
  const consumer = new Consumer(huey, { workers: 4, gracePeriod: 1 });
  await consumer.start();
  return consumer;
}

/** Wait until nothing is queued, scheduled or claimed: every message was settled one way or another. */
async function drained(consumer: Consumer, seconds = 15): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const claimed = (await Promise.all(consumer.pool.workerIds.map((id) => huey.storage.claimed(id)))).flat();
    const queued = await huey.pendingCount();
    const scheduled = await huey.scheduledCount();
    if (claimed.length === 0 && queued === 0 && scheduled === 0) return;
    assert.ok(Date.now() < deadline, `still ${queued} queued, ${scheduled} scheduled and ${claimed.length} claimed after ${seconds}s`);
    await sleep(20);
  }
}

/** Dead letters, counted by the id of the message they hold. */
async function deadLettersById(): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const letter of await huey.storage.deadLetters()) {
    let id = '(unreadable)';
    try {
      id = String((JSON.parse(letter.data) as { id?: unknown }).id);
    } catch {
      // counted under one name
    }
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

/** A message as a producer would write it, to be spoiled and pushed straight onto the Redis queue. */
function raw(name: string, args: unknown[], extra: Record<string, unknown> = {}): Record<string, unknown> & { id: string } {
  return { id: randomUUID(), name, args, retries: 0, retryDelay: 0, retryBackoff: 1, priority: 0, eta: null, expires: null, timeout: null, ...extra };
}

async function pushRaw(messages: ReadonlyArray<Record<string, unknown>>): Promise<void> {
  const client = (huey.storage as RedisStorage).client;
  await client.lPush(new RedisKeys('poison').queue, messages.map((message) => JSON.stringify(message)));
}

describe('poison messages', () => {
  it('fails a pipeline step whose value is too large to pass on, once, as its own error', async () => {
    await huey.flush();
    const consumer = await startConsumer();
    try {
      const results = huey.enqueue(tasks.big.s('pipeline-big', 100_000).then(tasks.measure));
      await results.enqueued;
      await assert.rejects(results.at(0).get({ blocking: true, timeout: 15 }), (error: unknown) => {
        assert.ok(error instanceof TaskError, `expected a TaskError, got ${String(error)}`);
        assert.equal(error.remote.name, 'SerializationError');
        assert.match(error.remote.message, /next step/);
        assert.match(error.remote.message, /over the limit of 65536/);
        return true;
      });
      await drained(consumer);
      assert.equal(runs.get('pipeline-big'), 1, 'the step ran exactly once');
      assert.equal(await results.at(1).get(), undefined, 'the next step never ran');
      assert.equal(await huey.storage.deadLetterCount(), 0, 'nothing was dead-lettered');
    } finally {
      await consumer.stop();
    }
  });

  it('fails a chord callback whose gathered results are too large in its own place, running each member once', async () => {
    await huey.flush();
    const consumer = await startConsumer();
    try {
      const results = huey.enqueue(group([tasks.big.s('chord-a', 40_000), tasks.big.s('chord-b', 40_000)]).then(tasks.measure));
      await results.enqueued;
      await assert.rejects(results.at(2).get({ blocking: true, timeout: 15 }), (error: unknown) => {
        assert.ok(error instanceof TaskError, `expected a TaskError, got ${String(error)}`);
        assert.equal(error.remote.taskName, 'measure');
        assert.match(error.remote.message, /over the limit of 65536/);
        return true;
      });
      assert.equal(((await results.at(0).get({ blocking: true, timeout: 5 })) as string).length, 40_000);
      assert.equal(((await results.at(1).get({ blocking: true, timeout: 5 })) as string).length, 40_000);
      await drained(consumer);
      assert.equal(runs.get('chord-a'), 1);
      assert.equal(runs.get('chord-b'), 1);
      assert.equal(await huey.storage.deadLetterCount(), 0);
    } finally {
      await consumer.stop();
    }
  });

  it('settles messages with malformed follow-ups once, and runs the 50 tasks queued behind them', async () => {
    await huey.flush();
    handled.length = 0;
    const ghost = () => raw('ghost', []);
    // A follow-up of the wrong shape is refused as the message is read (dead-lettered once, unrun); one
    // naming a task this process does not know is found before the run (failed unrun, a TaskError).
    // Either way: settled once, never run again. `known` marks the ones that must end as a TaskError.
    const poison = [
      { tag: 'complete-number', why: /onComplete/, message: raw('counted', ['complete-number'], { onComplete: 42 }) },
      { tag: 'complete-string', why: /onComplete/, message: raw('counted', ['complete-string'], { onComplete: 'measure' }) },
      { tag: 'complete-shape', why: /onComplete/, message: raw('counted', ['complete-shape'], { onComplete: { task: 'measure', args: 'none' } }) },
      { tag: 'complete-nested', why: /onComplete\.?"?\.?onError|onComplete\.onError/, message: raw('counted', ['complete-nested'], { onComplete: raw('measure', [], { onError: 5 }) }) },
      { tag: 'error-number', why: /onError/, message: raw('explode', ['error-number'], { onError: 7 }) },
      { tag: 'chord-callback', why: /chord/, message: raw('counted', ['chord-callback'], { chord: { id: randomUUID(), index: 0, size: 1, callback: 3 } }) },
      { tag: 'chord-string', why: /chord/, message: raw('counted', ['chord-string'], { chord: 'c2' }) },
      { tag: 'complete-unknown', why: /onComplete names an unknown task "ghost"/, known: true, message: raw('counted', ['complete-unknown'], { onComplete: ghost() }) },
      { tag: 'complete-deep-unknown', why: /onComplete\.onComplete names an unknown task "ghost"/, known: true, message: raw('counted', ['complete-deep-unknown'], { onComplete: raw('measure', [], { onComplete: ghost() }) }) },
      { tag: 'error-unknown', why: /onError names an unknown task "ghost"/, known: true, message: raw('explode', ['error-unknown'], { onError: ghost() }) },
      { tag: 'chord-unknown', why: /chord\.callback names an unknown task "ghost"/, known: true, message: raw('counted', ['chord-unknown'], { chord: { id: randomUUID(), index: 0, size: 1, callback: ghost() } }) },
      // A sound error handler beside an unknown next step still hears of the failure.
      { tag: 'complete-handled', why: /onComplete names an unknown task "ghost"/, known: true, message: raw('counted', ['complete-handled'], { onComplete: ghost(), onError: raw('handler', ['complete-handled']) }) },
    ];
    await pushRaw(poison.map((p) => p.message));
    const good = tasks.double.map(Array.from({ length: 50 }, (_, i) => [i]));
    await good.enqueued;
    assert.equal(await huey.pendingCount(), poison.length + 50, 'the poison messages are queued ahead of the good ones');

    const consumer = await startConsumer();
    try {
      assert.deepEqual(await good.get({ blocking: true, timeout: 20 }), Array.from({ length: 50 }, (_, i) => i * 2));
      await drained(consumer);
      const handledDeadline = Date.now() + 10_000;
      while (handled.length === 0) {
        assert.ok(Date.now() < handledDeadline, 'the sound error handler ran');
        await sleep(20);
      }
      await drained(consumer);

      const letters = await deadLettersById();
      const reasons = new Map((await huey.storage.deadLetters()).map((letter) => [String((JSON.parse(letter.data) as { id?: unknown }).id), letter.reason]));
      for (const { tag, why, known, message } of poison) {
        assert.ok((runs.get(tag) ?? 0) <= 1, `${tag} ran ${runs.get(tag)} times`);
        const deadLettered = letters.get(message.id) ?? 0;
        assert.ok(deadLettered <= 1, `${tag} was dead-lettered ${deadLettered} times`);
        if (deadLettered === 1 && !known) {
          assert.match(reasons.get(message.id)!, why, tag);
          continue;
        }
        assert.equal(deadLettered, 0, `${tag} is failed visibly, not dead-lettered`);
        // Settled before its claim was acked, so the result is there once the queue is drained.
        await assert.rejects(huey.result(message.id).get(), (error: unknown) => {
          assert.ok(error instanceof TaskError, `${tag}: expected a TaskError, got ${String(error)}`);
          assert.equal(error.remote.name, 'SerializationError', tag);
          assert.match(error.remote.message, /was not run/, tag);
          assert.match(error.remote.message, why, tag);
          return true;
        });
        assert.equal(runs.get(tag) ?? 0, 0, `${tag} was not run`);
      }
      assert.deepEqual(
        // The TaskError travels as data: the handler gets an Error with its name and message.
        handled.map(([tag, error]) => [tag, error.name === 'TaskError' && /unknown task "ghost"/.test(error.message)]),
        [['complete-handled', true]],
      );
      for (const [id, count] of letters) assert.equal(count, 1, `message ${id} was dead-lettered ${count} times`);
      assert.ok([...letters.values()].reduce((a, b) => a + b, 0) <= poison.length, 'at most one dead letter per poison message');
    } finally {
      await consumer.stop();
    }
  });
});
