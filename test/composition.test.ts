import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { chord, group, RedisHuey, TaskError } from '../src/index.js';
import { Worker } from '../src/consumer/worker.js';
import { startRedis, type TestRedis } from './support/redis-server.js';

let redis: TestRedis;
let huey: RedisHuey;
let workers: Worker[] = [];
let running: Array<Promise<void>> = [];

function startWorkers(): void {
  workers = [1, 2, 3].map((n) => new Worker(huey, `composition-${n}`, { blockingTimeout: 0.1 }));
  running = workers.map((w) => w.run());
}

async function stopWorkers(): Promise<void> {
  for (const w of workers) w.stop();
  await Promise.all(running);
}

before(async () => {
  redis = await startRedis();
  huey = new RedisHuey('composition', { url: redis.url });
  tasks = defineTasks();
  startWorkers();
});
after(async () => {
  await stopWorkers();
  await huey.flush();
  await huey.close();
  await redis.close();
});

const callbackRuns: unknown[][] = [];
const handled: Array<[string, TaskError]> = [];
let tasks: ReturnType<typeof defineTasks>;

function defineTasks() {
  const add = huey.task()(function add(a: number, b: number) {
    return a + b;
  });
  const slowEcho = huey.task()(async function slowEcho(value: string, ms: number) {
    await sleep(ms);
    return value;
  });
  const fail = huey.task()(function fail(why: string, _input?: unknown): number {
    throw new Error(why);
  });
  const total = huey.task()(function total(label: string, values: Array<number | TaskError>) {
    callbackRuns.push(values);
    const numbers = values.filter((v): v is number => typeof v === 'number');
    return `${label}: ${numbers.reduce((a, b) => a + b, 0)} (${values.length - numbers.length} failed)`;
  });
  const onError = huey.task()(function onError(tag: string, error: TaskError) {
    handled.push([tag, error]);
    return 'handled';
  });
  return { add, slowEcho, fail, total, onError };
}

describe('pipelines', () => {
  it('passes each result on as the next step\'s last argument', async () => {
    const { add } = tasks;
    const pipe = add.s(1, 2).then(add, 3).then(add, 4);
    const results = huey.enqueue(pipe);
    assert.equal(results.length, 3);
    assert.deepEqual(await results.get({ blocking: true, timeout: 10 }), [3, 6, 10]);
    assert.equal(await results.at(2).get(), 10);
  });

  it('stops at a failed step, runs its error handler, and rejects with the step\'s error', async () => {
    const { add, fail, onError } = tasks;
    const results = huey.enqueue(add.s(1, 1).then(fail, 'step two broke').error(onError, 'pipe-1').then(add, 100));
    await assert.rejects(results.get({ blocking: true, timeout: 10 }), (error: unknown) => {
      assert.ok(error instanceof TaskError);
      assert.equal(error.remote.message, 'step two broke');
      return true;
    });
    const deadline = Date.now() + 5000;
    while (handled.length === 0) {
      assert.ok(Date.now() < deadline, 'the error handler ran');
      await sleep(10);
    }
    assert.equal(handled[0]![0], 'pipe-1');
    assert.match(String(handled[0]![1].message), /step two broke/);
    assert.equal(await results.at(2).get(), undefined, 'the step after the failure never ran');
  });
});

describe('groups and chords', () => {
  it('enqueues members at once and yields results as they complete', async () => {
    const { slowEcho } = tasks;
    const results = huey.enqueue(group([slowEcho.s('slow', 300), slowEcho.s('fast', 1), slowEcho.s('middle', 100)]));
    const arrived: string[] = [];
    for await (const value of results) arrived.push(value);
    assert.deepEqual(arrived, ['fast', 'middle', 'slow']);
    assert.deepEqual(await results.get(), ['slow', 'fast', 'middle']);
  });

  it('runs a chord callback once with every result, failures as errors', async () => {
    const { add, fail, total } = tasks;
    callbackRuns.length = 0;
    const results = huey.enqueue(group([add.s(1, 2), add.s(3, 4), fail.s('member broke')]).then(total, 'sum'));
    assert.equal(results.length, 4);
    assert.equal(await results.at(3).get({ blocking: true, timeout: 10 }), 'sum: 10 (1 failed)');
    assert.equal(callbackRuns.length, 1);
    const values = callbackRuns[0]!;
    assert.deepEqual(values.slice(0, 2), [3, 7]);
    assert.ok(values[2] instanceof Error);
    assert.match((values[2] as Error).message, /member broke/);
  });

  it('counts a member that ran twice only once', async () => {
    const { add, total } = tasks;
    callbackRuns.length = 0;
    await stopWorkers();
    const work = group([add.s(1, 1), add.s(2, 2)]).then(total, 'dup');
    const [first, second] = work.messages();
    // At-least-once delivery may run a member twice; the chord must not fire early.
    await huey.execute(first!);
    await huey.execute(first!);
    assert.equal(await huey.pendingCount(), 0);
    await huey.execute(second!);
    const [callback] = await huey.pending();
    assert.equal(callback?.name, 'total');
    assert.deepEqual(callback?.args, ['dup', [2, 4]]);
    startWorkers();
  });

  it('has chord() as the short form, and map() for many calls of one task', async () => {
    const { add, total } = tasks;
    const mapped = add.map([[1, 1], [2, 2], [3, 3]]);
    assert.deepEqual(await mapped.get({ blocking: true, timeout: 10 }), [2, 4, 6]);
    const short = huey.enqueue(chord([add.s(5, 5), add.s(6, 6)], total, 'short'));
    assert.equal(await short.at(2).get({ blocking: true, timeout: 10 }), 'short: 22 (0 failed)');
  });
});
