import 'reflect-metadata';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Consumer } from '../src/consumer/consumer.js';
import { Scheduler } from '../src/consumer/scheduler.js';
import { Worker } from '../src/consumer/worker.js';
import { CancelExecution, ConfigurationError, MemoryHuey, RedisHuey, RetryTask, TaskError, type SignalName, type TaskContext } from '../src/index.js';
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

  it('cancels for good from a hook even with retries left, as Huey does, unless the hook asks for a retry', async () => {
    const huey = new MemoryHuey(`hook-cancel-retry-${randomUUID()}`);
    const ran: string[] = [];
    huey.preExecute((task) => {
      if (task.args[0] === 'stop') throw new CancelExecution('stopped by a hook');
      if (task.args[0] === 'later' && task.retries === 2) throw new CancelExecution('put off', { retry: true });
    });
    const task = huey.task({ retries: 2 })(function hooked(what: string) {
      ran.push(what);
      return what;
    });
    const stopped = task('stop');
    const later = task('later');
    await Promise.all([stopped.enqueued, later.enqueued]);
    const worker = new Worker(huey, 'w1');
    while ((await worker.runOnce()) > 0);
    assert.deepEqual(ran, ['later'], 'the plain cancel was not retried; the one that asked was');
    await assert.rejects(stopped.get(), (error: unknown) => error instanceof TaskError && error.remote.name === 'CancelExecution');
    assert.equal(await later.get(), 'later');
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
      `import { createClient } from ${JSON.stringify(import.meta.resolve('@redis/client'))};
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

describe('delays and expiry, on Redis with a real scheduler and worker', () => {
  let redis: TestRedis;
  let huey: InstanceType<typeof RedisHuey>;
  let worker: Worker;
  let scheduler: Scheduler;
  let running: Promise<void>;
  const ran: string[] = [];
  const signals: Array<[SignalName, string]> = [];
  let echo: ReturnType<typeof defineEcho>;

  function defineEcho() {
    return huey.task()(function echo(value: string) {
      ran.push(value);
      return value;
    });
  }

  before(async () => {
    redis = await startRedis();
    huey = new RedisHuey(`delays-${randomUUID()}`, { url: redis.url });
    echo = defineEcho();
    huey.signal('enqueued', 'scheduled', 'expired', 'executing')((signal, task) => void signals.push([signal, task.args[0] as string]));
    worker = new Worker(huey, 'delays-1', { blockingTimeout: 0.1 });
    scheduler = new Scheduler(huey, { periodic: false });
    running = worker.run();
    scheduler.start();
  });

  after(async () => {
    worker.stop();
    await scheduler.stop();
    await running;
    await huey.close();
    await redis.close();
  });

  // Margins of a second or more: a loaded machine may take that long between a due time and the run.
  it('starts a delayed task’s expiry when it falls due: delay 2.5 s with expires 1.5 s runs', async () => {
    const result = echo.schedule({ args: ['late but fresh'], delay: 2.5, expires: 1.5 });
    assert.equal(await result.get({ blocking: true, timeout: 10 }), 'late but fresh');
    const message = result.message!;
    assert.equal(message.expiresIn, 1.5);
    assert.equal(message.expires, message.eta! + 1500, 'the expiry counts from the eta');
  });

  it('still drops a task that waits in the queue past its expiry', async () => {
    worker.stop();
    await running;
    try {
      const stale = echo.schedule({ args: ['stale'], delay: 0, expires: 0.05 });
      await stale.enqueued;
      const deadline = stale.message!.expires!;
      while (Date.now() <= deadline) await sleep(deadline + 1 - Date.now());
      assert.equal(await new Worker(huey, 'delays-2').runOnce(), 1);
      assert.ok(!ran.includes('stale'));
      assert.ok(signals.some(([signal, value]) => signal === 'expired' && value === 'stale'));
    } finally {
      worker = new Worker(huey, 'delays-3', { blockingTimeout: 0.1 });
      running = worker.run();
    }
  });

  it('counts the expiry anew for each retry, as Huey does', async () => {
    let calls = 0;
    const flaky = huey.task({ retries: 1, retryDelay: 2.5 })(function flaky() {
      calls++;
      if (calls === 1) throw new Error('first try fails');
      return calls;
    });
    // Without the restart, the retry (due 2.5 s after the failure) would have expired 1.5 s after the first run.
    assert.equal(await flaky.schedule({ args: [], delay: 0, expires: 1.5 }).get({ blocking: true, timeout: 10 }), 2);
  });

  it('shows a delayed task in scheduled(), not pending(), signalled scheduled rather than enqueued', async () => {
    signals.length = 0;
    const later = echo.schedule({ args: ['in an hour'], delay: 3600 });
    await later.enqueued;
    assert.deepEqual((await huey.scheduled()).map((m) => m.id), [later.id]);
    assert.deepEqual(await huey.pending(), []);
    assert.deepEqual(signals, [['scheduled', 'in an hour']]);
    await later.revoke();
    await huey.storage.flushSchedule();
  });

  it('puts a message found in the queue before its eta back in the schedule, as Huey’s execute() does', async () => {
    signals.length = 0;
    const early = echo.s('too early').message();
    early.eta = Date.now() + 700;
    // As a producer whose clock runs ahead, or a hand-written message, would put it.
    await huey.storage.enqueue(huey.serializeMessage(early));
    const result = huey.result<string>(early.id);
    assert.equal(await result.get({ blocking: true, timeout: 10 }), 'too early');
    assert.ok(Date.now() >= early.eta, 'not before its eta');
    const order = signals.filter(([, value]) => value === 'too early').map(([signal]) => signal);
    assert.deepEqual(order, ['scheduled', 'executing']);
  });
});

describe('errors while retries remain (storeIntermediateErrors)', () => {
  function app(storeIntermediateErrors?: boolean) {
    const huey = new MemoryHuey(`intermediate-${randomUUID()}`, { storeIntermediateErrors });
    let calls = 0;
    const handled: string[] = [];
    const flaky = huey.task({ retries: 1 })(function flaky() {
      calls++;
      if (calls === 1) throw new Error('first try fails');
      return 'second try works';
    });
    const onError = huey.task()(function onError(error: TaskError) {
      handled.push(error.remote.message);
    });
    return { huey, flaky, onError, handled, worker: new Worker(huey, 'w1') };
  }

  it('by default stores only the last try’s outcome: a waiting get() sees the retry succeed', async () => {
    const { huey, flaky, onError, handled, worker } = app();
    const result = huey.enqueue(flaky.s().error(onError)).at(0);
    await result.enqueued;
    assert.equal(await worker.runOnce(), 1);
    assert.equal(await result.get(), undefined, 'no error stored while a retry remains');
    while ((await worker.runOnce()) > 0);
    assert.equal(await result.get(), 'second try works');
    assert.deepEqual(handled, []);
  });

  it('with storeIntermediateErrors, as Huey by default: each failure is stored and handled, and a later success replaces it', async () => {
    const { huey, flaky, onError, handled, worker } = app(true);
    const result = huey.enqueue(flaky.s().error(onError)).at(0);
    await result.enqueued;
    assert.equal(await worker.runOnce(), 1);
    await assert.rejects(result.get({ preserve: true }), (error: unknown) => error instanceof TaskError && error.remote.message === 'first try fails' && error.remote.retries === 1);
    while ((await worker.runOnce()) > 0);
    assert.deepEqual(handled, ['first try fails'], 'the error handler ran for the failed try');
    assert.equal(await result.get(), 'second try works');
  });
});

describe('shared state, readiness and results that are off', () => {
  it('keeps small values with put/get/delete, apart from results', async () => {
    const huey = new MemoryHuey(`kv-${randomUUID()}`, { immediate: true });
    const task = huey.task()(function same() {
      return 'result';
    });
    await huey.put('config', { retries: 3, names: ['a'] });
    const call = task.schedule({ args: [], delay: 0, id: 'config' });
    assert.deepEqual(await huey.get('config', { peek: true }), { retries: 3, names: ['a'] });
    assert.equal(await call.get({ preserve: true }), 'result', 'a task with the same id keeps its own result');
    assert.deepEqual(await huey.get('config'), { retries: 3, names: ['a'] });
    assert.equal(await huey.get('config'), undefined, 'get() reads the value away, as in Huey');
    await huey.put('flag', 1);
    assert.equal(await huey.delete('flag'), true);
    assert.equal(await huey.delete('flag'), false);
  });

  it('says whether a result is ready without reading it away', async () => {
    const huey = new MemoryHuey(`ready-${randomUUID()}`);
    const task = huey.task()(function answer() {
      return 42;
    });
    const result = task();
    await result.enqueued;
    assert.equal(await result.isReady(), false);
    assert.equal(huey.readyToRun(result.message!), true);
    assert.equal(huey.readyToRun({ ...result.message!, eta: Date.now() + 60_000 }), false);
    await new Worker(huey, 'w1').runOnce();
    assert.equal(await result.isReady(), true);
    assert.equal(await result.get(), 42);
  });

  it('says plainly that there is nothing to read when results are off', async () => {
    const huey = new MemoryHuey(`no-results-${randomUUID()}`, { results: false });
    const task = huey.task()(function answer() {
      return 42;
    });
    const result = task();
    await assert.rejects(result.get({ blocking: true }), /keeps no results \(results: false\)/);
    await assert.rejects(result.isReady(), /keeps no results/);
  });
});

describe('reschedule() and cooperative timeouts', () => {
  it('reschedules with a new expiry and priority', async () => {
    const huey = new MemoryHuey(`reschedule-${randomUUID()}`);
    const task = huey.task({ expires: 60 })(function later() {
      return 'ran';
    });
    const first = task();
    await first.enqueued;
    const copy = await first.reschedule({ delay: 30, priority: 7, expires: 5 });
    const [message] = await huey.scheduled();
    assert.equal(message?.id, copy.id);
    assert.equal(message?.priority, 7);
    assert.equal(message?.expires, message!.eta! + 5000, 'the new expiry counts from the new eta');
    await assert.rejects(first.reschedule({ delay: 1, priority: Number.NaN }), /priority must be/);
    const kept = await first.reschedule({ eta: new Date(Date.now() + 10_000) });
    assert.equal(kept.message?.expiresIn, 60, 'the task’s own relative expiry comes along, counted anew');
    assert.equal(kept.message?.expires, kept.message!.eta! + 60_000);
  });

  it('tells a task how long it has left and stops a loop that checks', async () => {
    const huey = new MemoryHuey(`cooperative-${randomUUID()}`, { immediate: true });
    const seen: number[] = [];
    const looping = huey.task({ context: true, timeout: 0.2 })(async function looping(task: TaskContext) {
      seen.push(task.timeRemaining());
      for (;;) {
        task.checkTimeout();
        await sleep(5);
      }
    });
    const free = huey.task({ context: true })(function free(task: TaskContext) {
      task.checkTimeout();
      return task.timeRemaining();
    });
    await assert.rejects(looping().get({ blocking: true, timeout: 5 }), (error: unknown) => error instanceof TaskError && error.remote.name === 'TaskTimeout');
    assert.ok(seen[0]! > 0 && seen[0]! <= 0.2, `time remaining at the start: ${seen[0]}`);
    assert.equal(await free().get(), Infinity);
  });
});
