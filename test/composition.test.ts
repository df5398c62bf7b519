import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CancelExecution, chord, group, RedisHuey, TaskError } from '../src/index.js';
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
  const total = huey.task()(function total(label: string, values: Array<number | TaskError | null>) {
    callbackRuns.push(values);
    const numbers = values.filter((v): v is number => typeof v === 'number');
    return `${label}: ${numbers.reduce((a, b) => a + b, 0)} (${values.length - numbers.length} failed)`;
  });
  const onError = huey.task()(function onError(tag: string, error: TaskError) {
    handled.push([tag, error]);
    return 'handled';
  });
  const collect = huey.task()(function collect(label: string, values: unknown[]) {
    callbackRuns.push(values);
    return [label, values.map((value) => (value instanceof TaskError ? `error: ${value.remote.message}` : value))];
  });
  const tag = huey.task()(function tag(label: string, value: unknown) {
    return `${label}(${JSON.stringify(value)})`;
  });
  // As a Huey user would cancel from a hook: calls whose first argument asks for it.
  huey.preExecute((task) => {
    if (task.args[0] === 'cancel me') throw new CancelExecution('canceled by a hook', { retry: false });
  });
  return { add, slowEcho, fail, total, onError, collect, tag };
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

/** Poll until `check` holds, failing with `what` after a deadline. */
async function until(what: string, check: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, what);
    await sleep(10);
  }
}

describe('chords as in Huey 3.3', () => {
  it('runs the callback with null in place of a member revoked, expired or canceled before it ran', async () => {
    const { add, slowEcho, collect } = tasks;
    const revokedId = `revoked-${Date.now()}`;
    await huey.revokeById(revokedId);
    const results = huey.enqueue(
      chord(
        [
          add.s(1, 2),
          add.s(3, 4).with({ id: revokedId }),
          add.s(5, 6).with({ expires: new Date(Date.now() - 1000) }),
          slowEcho.s('cancel me', 1),
        ],
        collect,
        'with gaps',
      ),
    );
    assert.equal(results.length, 5);
    assert.deepEqual(await results.at(4).get({ blocking: true, timeout: 10 }), ['with gaps', [3, null, null, null]]);
  });

  it('adds steps after the callback with then(), and handles the callback\'s failure with error()', async () => {
    const { add, fail, tag, onError, total } = tasks;
    const results = huey.enqueue(chord([add.s(1, 1), add.s(2, 2)], total, 'sum').then(tag, 'after'));
    assert.equal(results.length, 4, 'two members, the callback, the step after it');
    assert.deepEqual(await results.get({ blocking: true, timeout: 10 }), [2, 4, 'sum: 6 (0 failed)', 'after("sum: 6 (0 failed)")']);

    handled.length = 0;
    const failing = huey.enqueue(group([add.s(1, 1)]).then(fail, 'callback broke').error(onError, 'chord-error'));
    await assert.rejects(failing.at(1).get({ blocking: true, timeout: 10 }), /callback broke/);
    await until('the chord\'s error handler ran', () => handled.length === 1);
    assert.equal(handled[0]![0], 'chord-error');
  });

  it('handles any member\'s failure with group().error(), once per failed member', async () => {
    const { add, fail, onError } = tasks;
    handled.length = 0;
    const results = huey.enqueue(group([add.s(1, 1), fail.s('first broke'), add.s(2, 2).then(fail, 'second broke')]).error(onError, 'group-error'));
    assert.equal(results.length, 3, 'one handle per member: a pipeline member\'s last step');
    await until('both failures were handled', () => handled.length === 2);
    assert.deepEqual(handled.map(([label, error]) => [label, error.remote.message]).sort(), [
      ['group-error', 'first broke'],
      ['group-error', 'second broke'],
    ]);
    assert.equal(await results.at(0).get({ blocking: true, timeout: 10 }), 2);
  });

  it('takes pipelines as members: the last step\'s result counts, a failed step\'s error if the pipeline broke early', async () => {
    const { add, fail, onError, collect } = tasks;
    handled.length = 0;
    const results = huey.enqueue(
      chord([add.s(1, 1).then(add, 10), fail.s('early').error(onError, 'member-error').then(add, 100), add.s(0, 0)], collect, 'pipes'),
    );
    assert.equal(results.length, 4);
    const [label, values] = (await results.at(3).get({ blocking: true, timeout: 10 })) as [string, unknown[]];
    assert.equal(label, 'pipes');
    assert.deepEqual(values, [12, 'error: early', 0]);
    await until('the member\'s own error handler ran too', () => handled.length === 1);
    assert.equal(handled[0]![0], 'member-error');
  });

  it('nests a chord as a member of another: its callback\'s result is its result there', async () => {
    const { add, total, collect } = tasks;
    const inner = chord([add.s(1, 1), add.s(2, 2)], total, 'inner');
    const results = huey.enqueue(chord([inner, add.s(5, 5)], collect, 'outer'));
    assert.equal(results.length, 3, 'the inner chord\'s callback, the other member, the outer callback');
    assert.deepEqual(await results.at(2).get({ blocking: true, timeout: 10 }), ['outer', ['inner: 6 (0 failed)', 10]]);
  });

  it('refuses a group without a callback as a chord member, as Huey does', () => {
    const { add, total } = tasks;
    assert.throws(() => huey.enqueue(chord([group([add.s(1, 1)]) as never, add.s(1, 1)], total, 'x')), /group without a callback cannot be a chord member/);
  });
});

describe('signatures with settings', () => {
  it('enqueues a signature alone, with settings from with(), and takes signatures in then()', async () => {
    const { add } = tasks;
    await stopWorkers();
    try {
      const later = huey.enqueue(add.s(1, 2).with({ delay: 60, priority: 3 }));
      await later.enqueued;
      const [scheduled] = await huey.scheduled();
      assert.equal(scheduled?.id, later.id);
      assert.equal(scheduled?.priority, 3);
      assert.ok(scheduled!.eta! > Date.now() + 50_000);
      await huey.storage.flushSchedule();

      const pipe = huey.enqueue(add.s(1, 2).then(add, 10).with({ retries: 2, expires: 30 }));
      await pipe.enqueued;
      const [head] = await huey.pending();
      assert.deepEqual(head?.onComplete?.args, [10]);
      assert.equal(head?.onComplete?.retries, 2);
      assert.equal(head?.onComplete?.expiresIn, 30);
      assert.throws(() => add.s(1, 2).with({ retries: -1 }), /retries must be/);
      assert.throws(() => add.s(1, 1).then(add.s(2, 2) as never, 3 as never), /arguments in the signature/);
      const signed = huey.enqueue(add.s(1, 2).then(add.s(5, 5).with({ priority: 4 })));
      await signed.enqueued;
      const [, second] = await huey.pending();
      assert.equal(second?.onComplete?.priority, 4, 'a signature as the next step keeps its settings');
    } finally {
      startWorkers();
    }
  });
});
