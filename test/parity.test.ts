import 'reflect-metadata';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { Consumer } from '../src/consumer/consumer.js';
import { Worker } from '../src/consumer/worker.js';
import { CancelExecution, ConfigurationError, MemoryHuey, RetryTask, TaskError, type SignalName, type TaskContext } from '../src/index.js';
import { killAll, ROOT, Spawned } from './support/processes.js';
import { startRedis, type TestRedis } from './support/redis-server.js';

// Behaviours where huey-ts follows Huey 3.3.

describe('pre- and post-execute hooks, startup and shutdown hooks, signals', () => {
  it('runs every pre-execute hook even when one throws', async () => {
    const huey = new MemoryHuey(`hooks-${randomUUID()}`, { immediate: true });
    const seen: string[] = [];
    huey.preExecute(() => {
      seen.push('first');
      throw new Error('broken hook');
    });
    huey.preExecute(() => void seen.push('second'));
    const task = huey.task()(function task() {
      seen.push('task');
      return 'ran';
    });
    assert.equal(await task().get(), 'ran');
    assert.deepEqual(seen, ['first', 'second', 'task']);
  });

  it('still cancels on CancelExecution from a hook, after a hook that threw', async () => {
    const huey = new MemoryHuey(`hooks-cancel-${randomUUID()}`, { immediate: true });
    const seen: string[] = [];
    const signals: SignalName[] = [];
    huey.signal()((signal) => void signals.push(signal));
    huey.preExecute(() => {
      throw new Error('broken hook');
    });
    huey.preExecute(() => {
      throw new CancelExecution('not now', { retry: false });
    });
    huey.preExecute(() => void seen.push('after the cancel'));
    const task = huey.task()(function task() {
      seen.push('task');
    });
    await task().enqueued;
    assert.deepEqual(seen, []);
    assert.ok(signals.includes('canceled'));
    assert.ok(!signals.includes('executing'));
  });

  it('unregisters hooks, saying whether one was registered', async () => {
    const huey = new MemoryHuey(`unregister-${randomUUID()}`, { immediate: true });
    const seen: string[] = [];
    const pre = huey.preExecute(() => void seen.push('pre'));
    const post = huey.postExecute(() => void seen.push('post'));
    const startup = huey.onStartup(() => {});
    const shutdown = huey.onShutdown(() => {});
    const task = huey.task()(function task() {
      return 1;
    });
    await task().get();
    assert.deepEqual(seen, ['pre', 'post']);

    assert.equal(huey.unregisterPreExecute(pre), true);
    assert.equal(huey.unregisterPostExecute(post), true);
    assert.equal(huey.unregisterOnStartup(startup), true);
    assert.equal(huey.unregisterOnShutdown(shutdown), true);
    assert.equal(huey.unregisterPreExecute(pre), false);
    assert.equal(huey.unregisterPostExecute(post), false);
    assert.equal(huey.unregisterOnStartup(startup), false);
    assert.equal(huey.unregisterOnShutdown(shutdown), false);
    assert.deepEqual(huey.startupHooks, []);
    assert.deepEqual(huey.shutdownHooks, []);

    seen.length = 0;
    await task().get();
    assert.deepEqual(seen, []);
  });

  it('disconnects a signal handler, saying whether it was connected', async () => {
    const huey = new MemoryHuey(`disconnect-${randomUUID()}`, { immediate: true });
    const heard: SignalName[] = [];
    const handler = huey.signal('executing', 'complete')((signal: SignalName) => void heard.push(signal));
    const task = huey.task()(function task() {
      return 1;
    });
    await task().get();
    assert.deepEqual(heard, ['executing', 'complete']);

    assert.equal(huey.disconnectSignal(handler, 'error'), false, 'not connected to error');
    assert.equal(huey.disconnectSignal(handler, 'executing'), true);
    heard.length = 0;
    await task().get();
    assert.deepEqual(heard, ['complete']);

    assert.equal(huey.disconnectSignal(handler), true);
    assert.equal(huey.disconnectSignal(handler), false);
    heard.length = 0;
    await task().get();
    assert.deepEqual(heard, []);
  });
});

describe('RetryTask', () => {
  it('with neither delay nor eta waits the task’s retryDelay, without using a retry', async () => {
    const huey = new MemoryHuey(`retry-task-${randomUUID()}`, { immediate: true });
    let calls = 0;
    const patient = huey.task({ retryDelay: 60, retryBackoff: 2, retries: 1 })(function patient() {
      calls++;
      // Only twice: a retry that runs at once (the bug) must not loop for ever.
      if (calls <= 2) throw new RetryTask('not yet');
      return 'done';
    });
    const before = Date.now();
    await patient().enqueued;
    assert.equal(calls, 1, 'the retry waits instead of running at once');
    const [waiting] = await huey.scheduled();
    assert.ok(waiting, 'the retry is in the schedule');
    assert.equal(waiting.retries, 1, 'RetryTask keeps the retry');
    assert.ok(waiting.eta! >= before + 60_000 && waiting.eta! <= Date.now() + 60_000, `eta ${waiting.eta} is retryDelay from now`);
    assert.equal(waiting.retryDelay, 120, 'the delay grows by retryBackoff, as a retry’s does');
  });

  it('with neither delay nor eta and no retryDelay runs again at once; with delay: 0 too', async () => {
    const huey = new MemoryHuey(`retry-task-now-${randomUUID()}`, { immediate: true });
    let calls = 0;
    const eager = huey.task()(function eager(delay: number | null) {
      calls++;
      if (calls === 1) throw new RetryTask('again', delay === null ? {} : { delay });
      return calls;
    });
    assert.equal(await eager(null).get(), 2);
    calls = 0;
    const slow = huey.task({ retryDelay: 60 })(function slow() {
      calls++;
      if (calls === 1) throw new RetryTask('again', { delay: 0 });
      return calls;
    });
    assert.equal(await slow().get(), 2, 'an explicit delay of 0 is now, not retryDelay');
    assert.equal(await huey.scheduledCount(), 0);
  });
});

describe('schedule()', () => {
  it('refuses a call with neither delay nor eta, naming both, and enqueues nothing', async () => {
    const huey = new MemoryHuey(`schedule-${randomUUID()}`);
    const add = huey.task()(function add(a: number, b: number) {
      return a + b;
    });
    assert.throws(
      () => add.schedule({ args: [1, 2], priority: 3 }),
      (error: Error) => error instanceof ConfigurationError && /delay/.test(error.message) && /eta/.test(error.message),
    );
    assert.equal(await huey.pendingCount(), 0);
    assert.equal(await huey.scheduledCount(), 0);
    // A bad option is still named first.
    assert.throws(() => add.schedule({ args: [1, 2], retries: -1 }), /^ConfigurationError: retries must be/);
    // delay: 0 runs now with the call's settings.
    const now = add.schedule({ args: [1, 2], delay: 0, priority: 3 });
    await now.enqueued;
    assert.equal(now.message!.eta, null);
    assert.equal(await huey.pendingCount(), 1);
  });
});

describe('the task context', () => {
  it('has the run’s timeout in seconds, or null', async () => {
    const huey = new MemoryHuey(`context-timeout-${randomUUID()}`, { immediate: true });
    const limited = huey.task({ context: true, timeout: 5 })(function limited(task: TaskContext) {
      return task.timeout;
    });
    const unlimited = huey.task({ context: true })(function unlimited(task: TaskContext) {
      return [task.timeout];
    });
    assert.equal(await limited().get(), 5);
    assert.equal(await limited.schedule({ args: [], delay: 0, timeout: 2.5 }).get(), 2.5);
    assert.deepEqual(await unlimited().get(), [null]);
  });
});

describe('consumer options', () => {
  const huey = new MemoryHuey(`consumer-options-${randomUUID()}`);

  it('Consumer refuses a backoff under 1', () => {
    for (const backoff of [0.5, 0, -1, Number.NaN]) {
      assert.throws(() => new Consumer(huey, { backoff }), (error: Error) => error instanceof ConfigurationError && /backoff/.test(error.message), String(backoff));
    }
    assert.ok(new Consumer(huey, { backoff: 1 }));
  });

  it('Consumer refuses a scheduler interval that does not divide 60', () => {
    for (const schedulerInterval of [7, 45, 0, 61, 0.7]) {
      assert.throws(
        () => new Consumer(huey, { schedulerInterval }),
        (error: Error) => error instanceof ConfigurationError && /schedulerInterval/.test(error.message),
        String(schedulerInterval),
      );
    }
    for (const schedulerInterval of [1, 5, 15, 60, 0.5, 0.05]) assert.ok(new Consumer(huey, { schedulerInterval }));
  });

  const cli = (...args: string[]) => {
    try {
      // A consumer that wrongly starts is killed at the deadline (and then fails the test), on a scratch SQLite file.
      const env: NodeJS.ProcessEnv = { ...process.env, HUEY_SQLITE_FILE: join(tmpdir(), `huey-parity-${randomUUID()}.db`) };
      delete env.REDIS_URL;
      execFileSync(process.execPath, ['dist/cli/huey-consumer.js', 'examples/simple/main.huey', ...args], { cwd: ROOT, env, encoding: 'utf8', stdio: 'pipe', timeout: 10_000 });
    } catch (error) {
      const { status, stderr } = error as { status: number; stderr: string };
      return { status, stderr };
    }
    throw new Error(`huey-consumer ${args.join(' ')} should have failed`);
  };

  it('huey-consumer refuses --backoff 0.5, naming the flag', () => {
    const { status, stderr } = cli('--backoff', '0.5');
    assert.equal(status, 1);
    assert.match(stderr, /--backoff must be a number of at least 1, not 0\.5/);
  });

  it('huey-consumer refuses a --scheduler-interval that does not divide 60, naming the flag', () => {
    const { status, stderr } = cli('--scheduler-interval', '7');
    assert.equal(status, 1);
    assert.match(stderr, /--scheduler-interval must divide 60 seconds .*not 7/);
  });
});

describe('close() in immediate mode', () => {
  let redis: TestRedis;
  let dir: string;

  before(async () => {
    redis = await startRedis();
    dir = mkdtempSync(join(tmpdir(), 'huey-parity-'));
  });

  after(async () => {
    await killAll();
    await redis.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('closes the Redis connection made before immediate mode, so the process exits by itself', async () => {
    const file = join(dir, `immediate-${randomUUID()}.mts`);
    const src = pathToFileURL(join(ROOT, 'src/index.ts')).href;
    writeFileSync(
      file,
      `import { createClient } from ${JSON.stringify(import.meta.resolve('redis'))};
import { RedisHuey } from ${JSON.stringify(src)};
const huey = new RedisHuey('parity-immediate', { url: process.env.REDIS_URL });
const add = huey.task()(function add(a: number, b: number) { return a + b; });
await huey.connect();
await huey.pendingCount();
huey.immediate = true;
console.log('result', await add(1, 2).get());
await huey.close();
console.log('closed');
// The server must see no connection of this Huey's left (only the checker's own).
const checker = createClient({ url: process.env.REDIS_URL });
await checker.connect();
const clients = String(await checker.sendCommand(['CLIENT', 'LIST'])).trim().split('\\n').length;
await checker.close();
console.log('connections left', clients - 1);
`,
    );
    const script = new Spawned(process.execPath, ['--import', 'tsx', file], { REDIS_URL: redis.url });
    // The deadline only turns a process that never exits into a failure (killed: code null).
    const code = await script.exited(15_000);
    assert.equal(code, 0, script.output);
    assert.match(script.output, /result 3\nclosed\nconnections left 0\n/);
  });
});

describe('revocation', () => {
  it('revokes a call once, as Huey does: the flag is used up by the run it skips and leaves nothing behind', async () => {
    const huey = new MemoryHuey(`revoke-once-${randomUUID()}`);
    const runs: number[] = [];
    const task = huey.task()(function counted(n: number) {
      runs.push(n);
      return n;
    });
    const worker = new Worker(huey, 'w1');
    const first = task(1);
    await first.enqueued;
    await first.revoke();
    assert.equal(await first.isRevoked(), true);
    assert.equal(await worker.runOnce(), 1);
    assert.deepEqual(runs, [], 'the revoked call is skipped');
    assert.equal(await first.isRevoked(), false, 'and its flag is gone');
    assert.deepEqual(await huey.storage.dataKeys('r:'), [], 'no flag piles up in storage');
    // The same message enqueued again (as a retry would be) runs.
    await huey.enqueue(first.message!);
    assert.equal(await worker.runOnce(), 1);
    assert.deepEqual(runs, [1]);
  });

  it('keeps a permanent revocation when asked, and sees a revocation of the whole task from a call', async () => {
    const huey = new MemoryHuey(`revoke-task-${randomUUID()}`);
    const task = huey.task()(function revokedTask() {
      return 'ran';
    });
    const call = task();
    await call.enqueued;
    assert.equal(await call.isRevoked(), false);
    await task.revoke();
    assert.equal(await call.isRevoked(), true, 'a task-wide revocation covers the call');
    await task.restore();
    await call.revoke({ revokeOnce: false });
    const worker = new Worker(huey, 'w1');
    assert.equal(await worker.runOnce(), 1);
    assert.equal(await call.isRevoked(), true, 'a permanent revocation outlives the run it skipped');
  });
});

describe('wrapping another Huey\'s task', () => {
  it('registers the original function under its own name, enqueueing into the Huey that wraps it', async () => {
    const first = new MemoryHuey(`first-${randomUUID()}`, { immediate: true });
    const second = new MemoryHuey(`second-${randomUUID()}`, { immediate: true });
    const add = first.task()(function add(a: number, b: number) {
      return a + b;
    });
    const again = second.task()(add);
    assert.equal(again.taskName, 'add');
    assert.deepEqual(second.taskNames, ['add']);
    const result = again(1, 2);
    assert.equal(result.huey, second);
    assert.equal(await result.get(), 3);
  });
});

describe('failure reporting', () => {
  it('stores the error of a canceled run, so get() rejects with it and the error handler runs', async () => {
    const huey = new MemoryHuey(`cancel-${randomUUID()}`, { immediate: true });
    const handled: string[] = [];
    const gives = huey.task()(function givesUp() {
      throw new CancelExecution('not today', { retry: false });
    });
    const handler = huey.task()(function onCancel(error: TaskError) {
      handled.push(error.remote.name);
    });
    await assert.rejects(huey.enqueue(gives.s().error(handler)).get({ blocking: true, timeout: 5 }), (error: unknown) => {
      assert.ok(error instanceof TaskError);
      assert.equal(error.remote.name, 'CancelExecution');
      return true;
    });
    assert.deepEqual(handled, ['CancelExecution']);
  });

  it('hands error handlers a TaskError carrying the remote error, as the README says', async () => {
    const huey = new MemoryHuey(`errors-${randomUUID()}`, { immediate: true });
    const seen: unknown[] = [];
    const broken = huey.task()(function broken() {
      throw new RangeError('out of range');
    });
    const handler = huey.task()(function handler(error: TaskError) {
      seen.push(error);
    });
    await assert.rejects(huey.enqueue(broken.s().error(handler)).get({ blocking: true, timeout: 5 }), TaskError);
    assert.equal(seen.length, 1);
    const [error] = seen;
    assert.ok(error instanceof TaskError, `an instance of TaskError, not ${Object.prototype.toString.call(error)}`);
    assert.equal(error.remote.name, 'RangeError');
    assert.equal(error.remote.message, 'out of range');
    assert.equal(error.remote.taskName, 'broken');
  });
});
