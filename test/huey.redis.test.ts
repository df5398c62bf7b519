import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ResultTimeout, TaskError, RedisHuey, type SignalName } from '../src/index.js';
import { Worker } from '../src/consumer/worker.js';
import { startRedis, type TestRedis } from './support/redis-server.js';

let redis: TestRedis;
let huey: RedisHuey;
let worker: Worker;
let running: Promise<void>;

before(async () => {
  redis = await startRedis();
  huey = new RedisHuey('my-app', { url: redis.url });
  defineTasks();
  worker = new Worker(huey, 'test-worker', { blockingTimeout: 0.2 });
  running = worker.run();
});

after(async () => {
  worker.stop();
  await running;
  await huey.flush();
  await huey.close();
  await redis.close();
});

let add: ReturnType<typeof defineTasks>['add'];
let flaky: ReturnType<typeof defineTasks>['flaky'];
let Tasks: ReturnType<typeof defineTasks>['Tasks'];
const attempts = new Map<string, number>();

function defineTasks() {
  class TaskClass {
    @huey.task({ retries: 2, retryDelay: 1 })
    static async countBeans(num: number): Promise<string> {
      return `Counted ${num} beans`;
    }
  }
  const addTask = huey.task()(function add(a: number, b: number) {
    return a + b;
  });
  const flakyTask = huey.task({ retries: 2 })(async function flaky(key: string, failures: number) {
    const n = (attempts.get(key) ?? 0) + 1;
    attempts.set(key, n);
    if (n <= failures) throw new Error(`attempt ${n} failed`);
    return n;
  });
  add = addTask;
  flaky = flakyTask;
  Tasks = TaskClass;
  return { add: addTask, flaky: flakyTask, Tasks: TaskClass };
}

describe('RedisHuey end to end', () => {
  it('runs the README snippet', async () => {
    const r = add(1, 2);
    assert.equal(await r.get({ blocking: true, timeout: 5 }), 3);
    const beans = huey.taskOf(Tasks.countBeans)(7);
    assert.equal(await beans.get({ blocking: true, timeout: 5 }), 'Counted 7 beans');
    assert.equal(await add.callLocal(1, 2), 3);
  });

  it('keeps a delayed task in the Redis schedule until it is due', async () => {
    const r = add.schedule({ args: [1, 2], delay: 0.5 });
    await r.enqueued;
    const scheduled = await huey.scheduled();
    const mine = scheduled.find((m) => m.id === r.id);
    assert.ok(mine, 'the task is in the schedule');
    assert.ok(mine.eta! > Date.now());
    // Nothing moves before its time; at its time it is queued and run.
    assert.equal((await huey.storage.enqueueDue(Date.now())).moved, 0);
    while (Date.now() < mine.eta!) await new Promise((resolve) => setTimeout(resolve, mine.eta! - Date.now()));
    assert.equal((await huey.storage.enqueueDue(Date.now())).moved, 1);
    assert.equal(await r.get({ blocking: true, timeout: 5 }), 3);
  });

  it('retries a failing task under the same id until it succeeds', async () => {
    const seen: SignalName[] = [];
    const handler = huey.signal('error', 'retrying', 'complete')((signal, task) => {
      if (task.args[0] === 'twice') seen.push(signal);
    });
    const r = flaky('twice', 2);
    assert.equal(await r.get({ blocking: true, timeout: 5 }), 3);
    assert.deepEqual(seen, ['error', 'retrying', 'error', 'retrying', 'complete']);
    huey.disconnectSignal(handler);
  });

  it('reports a task that failed for good with the remote error', async () => {
    const r = flaky('always', 10);
    await assert.rejects(r.get({ blocking: true, timeout: 5 }), (error: unknown) => {
      assert.ok(error instanceof TaskError);
      assert.equal(error.remote.message, 'attempt 3 failed');
      assert.match(error.remote.stack ?? '', /attempt 3 failed\n\s+at /);
      assert.equal(error.remote.retries, 0);
      return true;
    });
    assert.equal(attempts.get('always'), 3);
  });

  it('times out a blocking get with ResultTimeout', async () => {
    await assert.rejects(huey.result('no-such-task').get({ blocking: true, timeout: 0.2 }), ResultTimeout);
  });

  it('dead-letters an unknown task and a corrupt payload, and goes on', async () => {
    await huey.storage.enqueue('{this is not json');
    await huey.storage.enqueue(JSON.stringify({ id: 'ghost-1', name: 'ghost', args: [], retries: 0 }));
    const r = add(20, 22);
    assert.equal(await r.get({ blocking: true, timeout: 5 }), 42);
    const letters = await huey.storage.deadLetters();
    const reasons = letters.map((l) => l.reason).join('\n');
    assert.match(reasons, /corrupt payload: SerializationError: payload is not valid JSON/);
    assert.match(reasons, /unknown task "ghost"/);
    await assert.rejects(huey.result('ghost-1').get(), /unknown task "ghost"/);
  });

  it('leaves nothing claimed once every task is done', async () => {
    await add.enqueue(1, 1);
    const deadline = Date.now() + 5000;
    while ((await huey.pendingCount()) > 0 || (await huey.storage.claimed('test-worker')).length > 0) {
      assert.ok(Date.now() < deadline, 'the worker drains the queue');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  });
});
