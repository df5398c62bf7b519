import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { DateTime } from 'luxon';
import { CancelExecution, RedisHuey, RetryTask, TaskError, TaskLockedError, type SignalName, type TaskContext } from '../src/index.js';
import { Consumer } from '../src/consumer/consumer.js';
import { Worker } from '../src/consumer/worker.js';
import { startRedis, type TestRedis } from './support/redis-server.js';
import { createClient } from '@redis/client';

// Retries, delays, revocation, locks, signals and hooks, run by a worker against Redis.
// Each test drives the worker one message at a time (runOnce), so time is never waited for:
// a delayed retry is moved from the schedule with enqueueDue(its eta), and the worker's clock
// is set to that time (a worker handed a message before its eta puts it back).

let redis: TestRedis;
let huey: RedisHuey;
let worker: Worker;
/** The worker's clock runs no earlier than this. */
let clock = 0;
const log: string[] = [];
const signals: Array<[SignalName, string]> = [];

before(async () => {
  redis = await startRedis();
  huey = new RedisHuey('features', { url: redis.url });
  huey.signal()((signal, task) => void signals.push([signal, task.name]));
  worker = new Worker(huey, 'features-worker', { now: () => Math.max(Date.now(), clock) });
});
beforeEach(async () => {
  clock = 0;
  log.length = 0;
  signals.length = 0;
  await huey.flush();
});
after(async () => {
  await huey.flush();
  await huey.close();
  await redis.close();
});

/** Run whatever is queued now, one message at a time. */
async function drain(): Promise<number> {
  let ran = 0;
  for (let claimed = await worker.runOnce(); claimed > 0; claimed = await worker.runOnce()) ran += claimed;
  return ran;
}

/** Move the one scheduled message to the queue at its eta and return that eta. */
async function releaseScheduled(): Promise<number> {
  const [message] = await huey.scheduled();
  assert.ok(message?.eta, 'a message waits in the schedule');
  assert.equal((await huey.storage.enqueueDue(message.eta)).moved, 1);
  clock = message.eta;
  return message.eta;
}

const signalsOf = (name: string) => signals.filter(([, task]) => task === name).map(([signal]) => signal);

describe('retries', () => {
  it('waits retryDelay before each retry, multiplied by retryBackoff', async () => {
    const failing = huey.task({ retries: 2, retryDelay: 10, retryBackoff: 2, context: true })(function failing(task: TaskContext) {
      log.push(`try with ${task.retries} left`);
      throw new Error('nope');
    });
    const result = failing();
    const started = Date.now();
    await drain();
    const first = (await huey.scheduled())[0]!;
    assert.ok(first.eta! - started >= 10_000 && first.eta! - started < 12_000, 'first retry in 10 s');
    // The retry went in with the failed run's ack, in one storage step: no claim is left beside it.
    assert.deepEqual(await huey.storage.claimed('features-worker'), []);
    assert.equal(await huey.scheduledCount(), 1);
    assert.equal(first.retryDelay, 20);
    await releaseScheduled();
    const secondStart = Date.now();
    await drain();
    const second = (await huey.scheduled())[0]!;
    assert.ok(second.eta! - secondStart >= 20_000 && second.eta! - secondStart < 22_000, 'second retry in 20 s');
    await releaseScheduled();
    await drain();
    assert.deepEqual(log, ['try with 2 left', 'try with 1 left', 'try with 0 left']);
    await assert.rejects(result.get(), (error: unknown) => error instanceof TaskError && error.remote.retries === 0);
    assert.deepEqual(signalsOf('failing'), ['enqueued', 'executing', 'error', 'retrying', 'scheduled', 'executing', 'error', 'retrying', 'scheduled', 'executing', 'error']);
  });

  it('takes retries per call, and RetryTask runs again without using one', async () => {
    let calls = 0;
    const patient = huey.task({ context: true })(function patient(task: TaskContext) {
      calls++;
      if (calls === 1) throw new RetryTask('not yet', { delay: 30 });
      if (calls === 2) throw new RetryTask('now');
      if (calls === 3) throw new Error('real failure');
      return `done with ${task.retries} retries left`;
    });
    const result = patient.schedule({ args: [], delay: 0, retries: 1 });
    await drain();
    const [waiting] = await huey.scheduled();
    assert.equal(waiting?.retries, 1, 'RetryTask kept the retry');
    await releaseScheduled();
    await drain();
    assert.equal(await result.get(), 'done with 0 retries left');
    assert.equal(calls, 4);
  });

  it('CancelExecution retries as Huey does: true forces one, false never, undefined if any are left', async () => {
    const outcomes: string[] = [];
    const cancelling = huey.task({ context: true })(function cancelling(retry: boolean | null, task: TaskContext) {
      outcomes.push(`${retry} with ${task.retries}`);
      if (task.retries === 0 && outcomes.length > 1 && retry === true) return 'second run';
      throw new CancelExecution('stop', { retry: retry ?? undefined });
    });
    const forced = cancelling(true);
    await drain();
    assert.equal(await forced.get(), 'second run');
    outcomes.length = 0;
    cancelling.schedule({ args: [false], delay: 0, retries: 3 });
    await drain();
    assert.deepEqual(outcomes, ['false with 3']);
    outcomes.length = 0;
    cancelling.schedule({ args: [null], delay: 0, retries: 1 });
    await drain();
    assert.deepEqual(outcomes, ['null with 1', 'null with 0']);
    assert.ok(signalsOf('cancelling').includes('canceled'));
  });

  it('a preExecute hook can cancel a run before it starts', async () => {
    const guarded = huey.task()(function guarded() {
      log.push('ran');
      return 1;
    });
    const hook = huey.preExecute((task) => {
      if (task.name === 'guarded') throw new CancelExecution('maintenance', { retry: false });
    });
    guarded();
    await drain();
    assert.deepEqual(log, []);
    assert.deepEqual(signalsOf('guarded'), ['enqueued', 'canceled']);
    huey['preExecuteHooks'].splice(huey['preExecuteHooks'].indexOf(hook), 1);
  });
});

describe('delays and revocation', () => {
  it('schedules by delay and eta, and reschedule() revokes the old run for a copy', async () => {
    const echo = huey.task()(function echo(text: string) {
      log.push(text);
      return text;
    });
    const byDelay = echo.schedule({ args: ['delay'], delay: 60 });
    const byEta = echo.schedule({ args: ['eta'], eta: DateTime.now().plus({ hours: 1 }) });
    await Promise.all([byDelay.enqueued, byEta.enqueued]);
    assert.equal(await huey.scheduledCount(), 2);
    const moved = await byDelay.reschedule({ delay: 5 });
    assert.notEqual(moved.id, byDelay.id);
    assert.equal(await huey.scheduledCount(), 3);
    // Everything comes due: the old run is skipped as revoked, the copy runs.
    clock = Date.now() + 2 * 3600_000;
    assert.equal((await huey.storage.enqueueDue(clock)).moved, 3);
    await drain();
    assert.deepEqual(log.sort(), ['delay', 'eta']);
    assert.equal(await moved.get(), 'delay');
    assert.equal(await byDelay.get(), undefined);
    assert.ok(signalsOf('echo').includes('revoked'));
  });

  it('revokes a task until restored, once, or until a time', async () => {
    const job = huey.task()(function job(n: number) {
      log.push(`job ${n}`);
      return n;
    });
    await job.revoke();
    assert.equal(await job.isRevoked(), true);
    job(1);
    await drain();
    assert.equal(await job.restore(), true);
    job(2);
    await drain();
    await job.revoke({ revokeOnce: true });
    job(3);
    job(4);
    await drain();
    assert.deepEqual(log, ['job 2', 'job 4']);

    const until = new Date(Date.now() + 60_000);
    await job.revoke({ revokeUntil: until });
    const late = job.s(5).message();
    assert.equal((await huey.execute(late, until.getTime() - 1)).status, 'revoked');
    assert.equal((await huey.execute(late, until.getTime() + 1)).status, 'complete', 'the flag lapses by itself');
    assert.equal(await job.isRevoked(), false);
  });

  it('revokes one call by its result or id', async () => {
    const job = huey.task()(function single(n: number) {
      log.push(`single ${n}`);
      return n;
    });
    const first = job(1);
    const second = job(2);
    const third = job(3);
    await first.revoke();
    await huey.revokeById(second.id);
    assert.equal(await first.isRevoked(), true);
    assert.equal(await huey.restoreById(second.id), true);
    await drain();
    assert.deepEqual(log, ['single 2', 'single 3']);
    assert.equal(await third.get(), 3);
  });

  it('reads a batch\'s revocation flags with its claim, and trusts them only under the message\'s own id and name', async () => {
    const peeky = huey.task()(function peeky(n: number) {
      log.push(`peeky ${n}`);
      return n;
    });
    const other = huey.task()(function other(n: number) {
      log.push(`other ${n}`);
      return n;
    });
    // MONITOR tells a client's own HMGET from the one the claim script runs ("lua").
    const monitor = createClient({ url: redis.url });
    await monitor.connect();
    const seen: string[] = [];
    await monitor.monitor((line) => void seen.push(line));
    const admin = createClient({ url: redis.url });
    await admin.connect();
    /** HMGETs sent by clients since the last call, once MONITOR has shown everything before a marker. */
    const clientReads = async () => {
      const marker = `marker-${seen.length}-${Date.now()}`;
      await admin.echo(marker);
      const deadline = Date.now() + 5000;
      while (!seen.some((line) => line.includes(marker)) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
      const lines = seen.splice(0);
      return lines.filter((line) => /"HMGET"/i.test(line) && !line.includes(' lua]')).length;
    };
    const batch = new Worker(huey, 'peek-worker', { concurrency: 10 });
    /** Run one batch of `claimed` messages: what ran, and how many HMGETs the worker sent itself. */
    const runBatch = async (claimed: number) => {
      log.length = 0;
      await clientReads();
      assert.equal(await batch.runOnce(), claimed);
      return { ran: [...log], ownReads: await clientReads() };
    };
    try {
      const calls = [peeky(1), peeky(2), other(3), peeky(4)];
      await Promise.all(calls.map((call) => call.enqueued));
      await calls[1]!.revoke();
      await other.revoke();
      assert.deepEqual(await runBatch(4), { ran: ['peeky 1', 'peeky 4'], ownReads: 0 }, 'the flags came with the claim');

      // A message whose first "id" is not the one it is read with (a later duplicate wins in
      // JSON): the peek found another id, so the worker reads the flags of its own itself.
      const decoy = `{"id":"decoy","name":"peeky","id":"real","args":[6],"retries":0,"retryDelay":0,"retryBackoff":1,"priority":0,"eta":null,"expires":null,"timeout":null}`;
      await huey.storage.enqueue(decoy);
      await huey.revokeById('real');
      await peeky(7).enqueued;
      assert.deepEqual(await runBatch(2), { ran: ['peeky 7'], ownReads: 1 });

      // An id JSON must escape: the peek does not match it, and the worker reads for itself.
      await peeky.schedule({ args: [8], delay: 0, id: 'say "hi"' }).enqueued;
      await huey.revokeById('say "hi"');
      await peeky(9).enqueued;
      assert.deepEqual(await runBatch(2), { ran: ['peeky 9'], ownReads: 1 });

      // A named queue keeps its own data: its claims do not peek, and its revoked tasks stay unrun.
      huey.queue('side');
      const aside = huey.task({ queue: 'side' })(function aside(n: number) {
        log.push(`aside ${n}`);
        return n;
      });
      const sideWorker = new Worker(huey, 'side-worker', { concurrency: 10, queues: ['side'] });
      const sideCalls = [aside(1), aside(2), aside(3)];
      await Promise.all(sideCalls.map((call) => call.enqueued));
      await sideCalls[0]!.revoke();
      log.length = 0;
      await clientReads();
      assert.equal(await sideWorker.runOnce(), 3);
      assert.deepEqual(log, ['aside 2', 'aside 3']);
      assert.equal(await clientReads(), 1, 'the flags read from the instance, in a step of their own');
    } finally {
      await admin.close();
      await monitor.close().catch(() => {});
    }
  });

  it('skips an expired task and signals it', async () => {
    const stale = huey.task({ expires: 30 })(function stale() {
      log.push('stale ran');
      return 1;
    });
    const result = stale();
    await result.enqueued;
    const [message] = await huey.pending();
    assert.equal((await huey.execute(message!, message!.expires! + 1)).status, 'expired');
    assert.ok(signalsOf('stale').includes('expired'));
    const dated = stale.schedule({ args: [], delay: 0, expires: new Date(Date.now() - 1000) });
    await dated.enqueued;
    await huey.storage.flushQueue();
    assert.deepEqual(log, []);
  });
});

describe('locks', () => {
  it('locks as wrapper, decorator and run(), and releases only by the holder', async () => {
    const lock = huey.lockTask('shared');
    let release!: () => void;
    const held = lock.run(() => new Promise<string>((resolve) => (release = () => resolve('held'))));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(await lock.isLocked(), true);
    await assert.rejects(lock.run(() => 'second'), TaskLockedError);

    class Reports {
      @huey.task({ retries: 1, retryDelay: 60 })
      @huey.lockTask('shared')
      static async build(): Promise<string> {
        log.push('built');
        return 'report';
      }
    }
    const wrapped = huey.task()(huey.lockTask('shared')(function wrapped() {
      log.push('wrapped');
      return 'w';
    }));
    const report = huey.taskOf(Reports.build)();
    const plain = wrapped();
    await drain();
    assert.deepEqual(log, [], 'both found the lock busy');
    assert.deepEqual(signalsOf('Reports.build').filter((s) => s === 'locked' || s === 'retrying'), ['locked', 'retrying']);
    await assert.rejects(plain.get(), (error: unknown) => error instanceof TaskError && error.remote.name === 'TaskLockedError');

    // Flushed while held, then taken by another: the first holder's release must not free it.
    assert.deepEqual(await huey.flushLocks('shared'), ['shared']);
    const token = await lock.acquire();
    release();
    assert.equal(await held, 'held');
    assert.equal(await lock.isLocked(), true, 'the first holder did not release the second\'s lock');
    assert.equal(await lock.release(token), true);
    await releaseScheduled();
    await drain();
    assert.equal(await report.get(), 'report');
    assert.deepEqual(log, ['built']);
  });

  it('clears locks at consumer startup with flushLocks or extraLocks', async () => {
    await huey.lockTask('left-a').acquire();
    await huey.lockTask('left-b').acquire();
    const consumer = new Consumer(huey, { extraLocks: ['left-a'] });
    await consumer.start();
    assert.equal(await huey.lockTask('left-a').isLocked(), false);
    assert.equal(await huey.lockTask('left-b').isLocked(), true);
    await consumer.stop();
    // The consumer closed the shared storage; reconnect for the rest of the file.
    await huey.connect();
    const flushing = new Consumer(huey, { flushLocks: true });
    await flushing.start();
    assert.equal(await huey.lockTask('left-b').isLocked(), false);
    await flushing.stop();
    await huey.connect();
  });
});

describe('signals and hooks', () => {
  it('emits each signal to named and catch-all handlers, survives a throwing handler, and disconnects', async () => {
    const heard: SignalName[] = [];
    const named = huey.signal('complete', 'error')((signal) => void heard.push(signal));
    huey.signal('complete')(() => {
      throw new Error('a broken handler');
    });
    const ok = huey.task()(function ok() {
      return 'ok';
    });
    const bad = huey.task()(function bad() {
      throw new Error('bad');
    });
    const result = ok();
    bad();
    await drain();
    assert.equal(await result.get(), 'ok', 'a throwing handler did not break the task');
    assert.deepEqual(heard, ['complete', 'error']);
    huey.disconnectSignal(named, 'error');
    bad();
    ok();
    await drain();
    assert.deepEqual(heard, ['complete', 'error', 'complete']);
    huey.disconnectSignal(named);
    ok();
    await drain();
    assert.equal(heard.length, 3);
    assert.deepEqual(signalsOf('ok').slice(0, 3), ['enqueued', 'executing', 'complete']);
  });

  it('runs pre- and post-execute hooks around each task, and startup/shutdown hooks in each worker', async () => {
    const seen: string[] = [];
    const pre = huey.preExecute((task) => void seen.push(`pre ${task.name}`));
    const post = huey.postExecute((task, value, error) => void seen.push(`post ${task.name} ${String(value)} ${error instanceof Error ? error.message : ''}`.trim()));
    const start = huey.onStartup(() => void seen.push('startup'));
    const stop = huey.onShutdown(() => void seen.push('shutdown'));
    const square = huey.task()(function square(n: number) {
      return n * n;
    });
    const broken = huey.task()(function broken() {
      throw new Error('oops');
    });
    const consumer = new Consumer(huey, { workers: 2 });
    await consumer.start();
    assert.equal(await square(4).get({ blocking: true, timeout: 5 }), 16);
    await assert.rejects(broken().get({ blocking: true, timeout: 5 }));
    await consumer.stop();
    await huey.connect();
    assert.deepEqual(seen, ['startup', 'startup', 'pre square', 'post square 16', 'pre broken', 'post broken undefined oops', 'shutdown', 'shutdown']);
    for (const [list, hook] of [
      ['preExecuteHooks', pre],
      ['postExecuteHooks', post],
      ['startupHooks', start],
      ['shutdownHooks', stop],
    ] as const) {
      const hooks = huey[list] as unknown[];
      hooks.splice(hooks.indexOf(hook), 1);
    }
  });

  it('carries the headers of onEnqueue hooks to the run, through a retry and into a pipeline step', async () => {
    let trace = 0;
    const hook = huey.onEnqueue((headers, task) => {
      headers.traceparent = `trace-${++trace}`;
      headers.task = task.name;
    });
    const seen: string[] = [];
    let tries = 0;
    const traced = huey.task({ retries: 1, context: true })(function traced(n: number, task: TaskContext) {
      seen.push(`${task.name} ${task.headers.traceparent} ${task.headers.task}`);
      if (tries++ === 0) throw new Error('once');
      return n + 1;
    });
    const pipeline = huey.enqueue(traced.s(1).then(traced));
    await pipeline.enqueued;
    await drain();
    assert.deepEqual(await pipeline.get(), [2, 3]);
    // The retry keeps the first trace; the next step, enqueued by the worker, gets its own.
    assert.deepEqual(seen, ['traced trace-1 traced', 'traced trace-1 traced', 'traced trace-2 traced']);
    const enqueueHooks = (huey as unknown as { enqueueHooks: unknown[] }).enqueueHooks;
    enqueueHooks.splice(enqueueHooks.indexOf(hook), 1);
  });
});
