import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { Huey, RedisStorage, type Storage, type TaskContext } from '../src/index.js';
import { Consumer, Worker } from '../src/consumer/index.js';
import { ROOT } from './support/processes.js';
import { testStorages } from './support/test-storages.js';
import { createClient, type RedisClientType } from '@redis/client';

// A record per task id: its state through enqueue, run, retry, failure, revocation and
// dead-lettering, its times, worker, error and progress; on every storage and in the CLI.

const { kinds: STORAGES, fresh, redis: testRedis } = testStorages('records');

function app(storage: Storage, options: { records?: boolean } = {}) {
  const huey = new Huey(fresh(), { storage, records: true, ...options });
  huey.queue('reports');
  const add = huey.task()(function add(a: number, b: number) {
    return a + b;
  });
  const flaky = huey.task({ retries: 1, queue: 'reports' })(function flaky() {
    throw new Error('always');
  });
  const counting = huey.task({ context: true })(function counting(n: number, task: TaskContext) {
    for (let i = 1; i <= n; i++) {
      task.progress({ done: i, of: n });
      task.log(`step ${i}${i === n ? ' '.repeat(2000) : ''}`);
    }
    return n;
  });
  return { huey, add, flaky, counting };
}

async function drain(worker: Worker): Promise<void> {
  while ((await worker.runOnce(0)) > 0);
}

for (const [kind, make] of Object.entries(STORAGES)) {
  describe(`task records on ${kind}`, () => {
    it('follows a task from enqueue to its end', async () => {
      const { huey, add, flaky } = app(make());
      try {
        const before = Date.now();
        const sum = add(1, 2);
        const later = add.schedule({ args: [3, 4], delay: 3600 });
        const failing = flaky();
        await Promise.all([sum.enqueued, later.enqueued, failing.enqueued]);
        const waiting = (await sum.status())!;
        assert.equal(waiting.state, 'enqueued');
        assert.equal(waiting.name, 'add');
        assert.equal(waiting.queue, 'default');
        assert.ok(waiting.created!.getTime() >= before && waiting.enqueued!.getTime() >= before);
        assert.equal(waiting.started, null);
        const scheduled = (await later.status())!;
        assert.equal(scheduled.state, 'scheduled');
        assert.equal(scheduled.eta?.getTime(), later.message!.eta);
        assert.equal((await huey.status(failing.id))?.queue, 'reports');

        const worker = new Worker(huey, 'records-worker', { prefetchWindow: 0 });
        await drain(worker);
        const done = (await huey.status(sum.id))!;
        assert.equal(done.state, 'complete');
        assert.equal(done.worker, 'records-worker');
        assert.ok(done.started && done.ended && done.ended >= done.started && done.started >= done.created!);
        assert.equal(done.error, null);
        assert.equal(await sum.get(), 3);

        // flaky ran, failed, and waits for its retry: then failed for good, with its error, in the failed registry.
        const failed = (await failing.status())!;
        assert.equal(failed.state, 'failed');
        assert.deepEqual(failed.error, { name: 'Error', message: 'always' });
        assert.equal(failed.retries, 0);
        assert.deepEqual(await huey.storageFor('reports').failedRecords(), [failing.id]);
        assert.deepEqual(await huey.storage.failedRecords(), []);
        assert.equal(await huey.status('no-such-id'), null);

        // Requeued from its record: it waits again, leaves the failed list, runs, and fails again.
        assert.equal(await huey.requeue(sum.id), false, 'only a failed task is requeued');
        assert.equal(await huey.requeue(failing.id), true);
        assert.equal((await failing.status())?.state, 'enqueued');
        assert.deepEqual(await huey.storageFor('reports').failedRecords(), []);
        await drain(worker);
        assert.equal((await failing.status())?.state, 'failed');
        assert.deepEqual(await huey.storageFor('reports').failedRecords(), [failing.id]);
      } finally {
        await huey.flush();
        await huey.close();
      }
    });

    it('records a retry waiting, a revoked run, a dead letter, the latest progress and log lines', async () => {
      const { huey, add, counting } = app(make());
      const retried = huey.task({ retries: 2, retryDelay: 3600 })(function retried() {
        throw new TypeError('not yet');
      });
      try {
        const waiting = retried();
        const revoked = add(5, 5);
        const progressing = counting(250);
        await Promise.all([waiting.enqueued, revoked.enqueued, progressing.enqueued]);
        await revoked.revoke();
        await huey.storage.enqueue(JSON.stringify({ id: 'ghost', name: 'no-such-task', args: [], retries: 0 }));
        await drain(new Worker(huey, 'w2', { prefetchWindow: 0 }));

        const retry = (await waiting.status())!;
        assert.equal(retry.state, 'retrying');
        assert.deepEqual(retry.error, { name: 'TypeError', message: 'not yet' });
        assert.equal(retry.retries, 1, 'retries left after the failed run');
        assert.ok(retry.eta && retry.eta.getTime() > Date.now() + 3_000_000, 'due at its retry');
        assert.equal((await revoked.status())?.state, 'revoked');
        const ghost = (await huey.status('ghost'))!;
        assert.equal(ghost.state, 'dead');
        assert.match(ghost.error!.message, /no-such-task/);
        // A loop of 250 progress calls: the latest value lands (the writes in between are throttled).
        assert.equal(await progressing.get(), 250);
        const deadline = Date.now() + 5000;
        while (JSON.stringify(await progressing.progress()) !== JSON.stringify({ done: 250, of: 250 }) && Date.now() < deadline) await sleep(20);
        assert.deepEqual(await progressing.progress(), { done: 250, of: 250 });
        const done = (await progressing.status())!;
        assert.equal(done.state, 'complete');
        // The log keeps the latest 50 lines, each cut to 1,000 characters.
        while ((await progressing.status())!.log.length < 50 && Date.now() < deadline) await sleep(20);
        const { log } = (await progressing.status())!;
        assert.equal(log.length, 50);
        assert.equal(log[0], 'step 201');
        assert.equal(log[49]!.length, 1000);
        assert.ok(log[49]!.startsWith('step 250 '));
      } finally {
        await huey.flush();
        await huey.close();
      }
    });

    it('keeps awkward text whole: a lone surrogate, NUL, quotes, newlines and emoji in a log line and an error', async () => {
      const { huey } = app(make());
      const awkward = `half \ud800 of a pair, nul \u0000, "quoted" \\ back, new\nline, emoji \u{1F600}, ]}`;
      const noisy = huey.task({ context: true })(function noisy(task: TaskContext) {
        task.log(awkward);
        throw new Error(awkward);
      });
      const logged = huey.task({ context: true })(function logged(task: TaskContext) {
        task.log(awkward);
        return 'ok';
      });
      try {
        const failing = noisy();
        const passing = logged();
        await Promise.all([failing.enqueued, passing.enqueued]);
        await drain(new Worker(huey, 'w-awkward', { prefetchWindow: 0 }));
        assert.equal(await passing.get(), 'ok');
        // A lone surrogate (no UTF-8 form) and NUL (not in PostgreSQL text) read back as U+FFFD on every storage.
        const kept = awkward.replace('\ud800', '\ufffd').replace('\u0000', '\ufffd');
        const failed = (await failing.status())!;
        assert.equal(failed.state, 'failed');
        assert.equal(failed.error?.message, kept);
        assert.deepEqual(failed.log, [kept]);
        const done = (await passing.status())!;
        assert.equal(done.state, 'complete');
        assert.deepEqual(done.log, [kept]);
        assert.equal(await huey.storage.queueSize(), 0, 'both claims settled');

        // An id of the caller's choosing must be storable as written: refused at the call, naming it.
        assert.throws(() => logged.schedule({ args: [], delay: 0, id: 'odd-\ud800-id' }), /id must be .*lone surrogate/);
        assert.throws(() => logged.schedule({ args: [], delay: 0, id: 'nul-\u0000-id' }), /id must be/);
      } finally {
        await huey.flush();
        await huey.close();
      }
    });

    it('keeps no records with records: false (the default)', async () => {
      const { huey, add } = app(make(), { records: undefined });
      try {
        const sum = add(1, 1);
        await sum.enqueued;
        await drain(new Worker(huey, 'w3'));
        assert.equal(await sum.get(), 2);
        assert.equal(await sum.status(), null);
      } finally {
        await huey.flush();
        await huey.close();
      }
    });
  });
}

describe('task records on Redis ride on the steps a task takes anyway', () => {
  /** Commands Redis served since the last call, by name (the test's own INFO and reset left out). */
  async function commandsSince(admin: RedisClientType): Promise<Record<string, number>> {
    const stats = await admin.info('commandstats');
    await admin.configResetStat();
    const calls: Record<string, number> = {};
    for (const [, name, count] of stats.matchAll(/cmdstat_([a-z|]+):calls=(\d+)/g)) if (!['info', 'config|resetstat'].includes(name!)) calls[name!] = Number(count);
    return calls;
  }

  /** Drain 20 quick tasks with records on or off: the commands of the drain, and the app's storage and handles. */
  async function drainTwenty(admin: RedisClientType, records: boolean) {
    const storage = new RedisStorage(fresh(), { url: testRedis().url });
    const { huey, add } = app(storage, { records });
    const sums = add.map(Array.from({ length: 20 }, (_, i) => [i, i] as [number, number]));
    await sums.enqueued;
    const worker = new Worker(huey, 'w-ride');
    await commandsSince(admin);
    await drain(worker);
    return { calls: await commandsSince(admin), storage, huey, sums };
  }

  it('writes a quick run\'s end with its result and ack: the same commands as with records off', async () => {
    const admin: RedisClientType = createClient({ url: testRedis().url });
    await admin.connect();
    // The first drain loads the scripts (an EVAL each): a warm-up, so that the two compared need none.
    const warm = await drainTwenty(admin, true);
    const off = await drainTwenty(admin, false);
    const on = await drainTwenty(admin, true);
    try {
      const seen = `${JSON.stringify(on.calls)} against ${JSON.stringify(off.calls)}`;
      // A batch is a claim script and a read of the revocation flags (HMGET); the batches may differ in number.
      const perRun = (calls: Record<string, number>) => calls.evalsha! - calls.hmget!;
      assert.equal(perRun(on.calls), perRun(off.calls), `scripts beside the claims: ${seen}`);
      assert.deepEqual(Object.keys(on.calls).sort(), Object.keys(off.calls).sort(), `no command of their own: ${seen}`);
      // Inside the scripts: one more HSET per run (its record), and no PEXPIRE: a quick run keeps the time to live it was enqueued with.
      assert.equal(on.calls.hset! - off.calls.hset!, 20);
      assert.equal(on.calls.pexpire ?? 0, 0);
      for (const result of on.sums.results) {
        const status = await result.status();
        assert.equal(status?.state, 'complete');
        assert.equal(status?.name, 'add');
        assert.ok(status?.started && status.ended && status.started.getTime() <= status.ended.getTime());
        assert.equal(status?.worker, 'w-ride');
        assert.ok(Number(await admin.pTTL(`huey.{${on.storage.name}}.record.${result.id}`)) > 0, 'the record still lapses');
      }
    } finally {
      for (const { huey } of [warm, off, on]) {
        await huey.flush();
        await huey.close();
      }
      await admin.close();
    }
  });

  it('records every task of a bulk enqueue larger than one step carries', async () => {
    const { huey, add } = app(new RedisStorage(fresh(), { url: testRedis().url }));
    try {
      const sums = add.map(Array.from({ length: 2500 }, (_, i) => [i, 1] as [number, number]));
      await sums.enqueued;
      const states = await Promise.all([sums.results[0]!, sums.results[1200]!, sums.results[2499]!].map((result) => result.status()));
      assert.deepEqual(states.map((status) => status?.state), ['enqueued', 'enqueued', 'enqueued']);
    } finally {
      await huey.flush();
      await huey.close();
    }
  });
});

describe('task records through a consumer and the CLI', () => {
  it('shows a long run as running, then its end; huey status and huey failed read them', async () => {
    const huey = new Huey('fixture-records', { storage: new RedisStorage('fixture-records', { url: testRedis().url }), records: true });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slow = huey.task()(async function slow() {
      await gate;
      return 'done';
    });
    const broken = huey.task()(function broken() {
      throw new RangeError('out of range');
    });
    const consumer = new Consumer(huey, { workers: 2 });
    try {
      await consumer.start();
      const run = slow();
      const failing = broken();
      const deadline = Date.now() + 10_000;
      while ((await run.status())?.state !== 'running' && Date.now() < deadline) await sleep(20);
      const running = (await run.status())!;
      assert.equal(running.state, 'running');
      assert.match(running.worker ?? '', /async$/);
      release();
      assert.equal(await run.get({ blocking: true, timeout: 10 }), 'done');
      await assert.rejects(failing.get({ blocking: true, timeout: 10 }), /out of range/);
      while ((await run.status())?.state !== 'complete' && Date.now() < deadline) await sleep(20);

      const cli = (...args: string[]) =>
        new Promise<{ code: number; stdout: string }>((resolve) =>
          execFile(process.execPath, ['dist/cli/huey.js', ...args], { cwd: ROOT, env: { ...process.env, REDIS_URL: testRedis().url } }, (error, stdout) =>
            resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout }),
          ),
        );
      const status = await cli('status', 'test/fixtures/records.huey', run.id, '--json');
      assert.equal(status.code, 0);
      assert.equal((JSON.parse(status.stdout) as { state: string }).state, 'complete');
      const unknown = await cli('status', 'test/fixtures/records.huey', 'nope');
      assert.equal(unknown.code, 1);
      assert.match(unknown.stdout, /no record of task nope/);
      const failed = await cli('failed', 'test/fixtures/records.huey');
      assert.match(failed.stdout, new RegExp(`${failing.id}  broken  \\[default\\]  RangeError: out of range`));
      const firstEnd = (await failing.status())!.ended!.getTime();
      const requeued = await cli('requeue', 'test/fixtures/records.huey', '--all', '--task', 'broken');
      assert.match(requeued.stdout, /requeued 1 failed task\(s\)/);
      // The consumer runs it again, and it fails again: a newer end.
      while (!((await failing.status())?.state === 'failed' && (await failing.status())!.ended!.getTime() > firstEnd) && Date.now() < deadline + 10_000) await sleep(20);
      assert.ok((await failing.status())!.ended!.getTime() > firstEnd, 'ran again');
      assert.equal((await cli('requeue', 'test/fixtures/records.huey', 'nope')).code, 2);
    } finally {
      release();
      await consumer.stop();
      await huey.flush();
      await huey.close();
    }
  });
});
