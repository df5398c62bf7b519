import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { Consumer } from '../src/consumer/consumer.js';
import { TaskError, type Result } from '../src/index.js';
import { CONSUMER_BIN, killAll, Spawned, startConsumer } from './support/processes.js';
import { startRedis, type TestRedis } from './support/redis-server.js';

// What a crash costs, against the real consumer: a consumer or a worker
// killed mid-drain fails only the runs it had started, and everything else
// it held goes back untouched and runs.

let redis: TestRedis;
let fixture: typeof import('./fixtures/crashes.js');

before(async () => {
  redis = await startRedis();
  process.env.REDIS_URL = redis.url;
  fixture = await import('./fixtures/crashes.js');
});
beforeEach(async () => {
  await fixture.huey.storage.flushAll();
});
// A test that failed midway must not leave a consumer taking the next test's tasks.
afterEach(() => killAll());
after(async () => {
  await killAll();
  await fixture.huey.close();
  await redis.close();
});

async function consumer(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Spawned> {
  const started = startConsumer(['test/fixtures/crashes.huey', ...args], { REDIS_URL: redis.url, ...env });
  await started.waitFor(/consumer running with/);
  return started;
}

async function stop(running: Spawned): Promise<void> {
  running.child.kill('SIGTERM');
  assert.equal(await running.exited(), 0, running.output);
}

/** Poll `condition` until it holds, failing after `timeoutMs`. */
async function until(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    assert.ok(Date.now() < deadline, `timed out waiting until ${what}`);
    await sleep(20);
  }
}

/** Each result's value, or the name of the remote error it failed with. */
async function outcomes<T>(results: Array<Result<T>>, timeout = 30): Promise<Array<T | string>> {
  const settled: Array<T | string> = [];
  for (const result of results) {
    try {
      settled.push(await result.get({ blocking: true, timeout }));
    } catch (error) {
      if (!(error instanceof TaskError)) throw error;
      settled.push(error.remote.name);
    }
  }
  return settled;
}

/** Pids of the live children of `pid`, read from /proc. */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) children.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return children;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('crash suite', () => {
  it('fails only the runs a SIGKILLed consumer had started; what it claimed ahead runs elsewhere', async () => {
    const first = await consumer(['-w', '8', '--lease', '1']);
    const total = 3000;
    const results = Array.from({ length: total }, (_, i) => fixture.quick(i));
    await Promise.all(results.map((r) => r.enqueued));
    // Mid-drain: batches of fast tasks are claimed well ahead of the 8 runs going.
    await until('a few hundred have run', async () => (await fixture.huey.pendingCount()) < total - 300);
    first.child.kill('SIGKILL');
    await first.exited();

    const second = await consumer(['-w', '8', '--lease', '1']);
    const settled = await outcomes(results);
    const died = settled.filter((value) => value === 'WorkerDiedError').length;
    assert.ok(died <= 8, `${died} tasks failed with WorkerDiedError; only the 8 running at the kill may`);
    assert.deepEqual(
      settled.filter((value) => value !== 'WorkerDiedError'),
      Array.from({ length: total }, (_, i) => i).filter((i) => settled[i] !== 'WorkerDiedError'),
      'every other task ran and returned its value',
    );
    const [, requeued] = (await second.waitFor(/the lease of \S+ ran out: of the tasks it held, \d+ had started and fail as runs, (\d+) had not/))!;
    assert.ok(Number(requeued) > 0, 'the killed consumer held tasks claimed ahead, which went back on the queue');
    await stop(second);
  });

  it('fails a task that kills every consumer running it, after its stalls, and runs its neighbours', async () => {
    const poison = fixture.killsConsumer();
    const neighbour = fixture.quick(7);
    await Promise.all([poison.enqueued, neighbour.enqueued]);
    const args = ['test/fixtures/crashes.huey', '-w', '1', '--lease', '1', '--max-stalls', '1'];
    // Each death counts as a failed run when the start got recorded, or as a
    // stall when the process died first: at most 1 + max stalls deaths.
    let deaths = 0;
    let settled: Array<unknown> | undefined;
    const outcome = outcomes([poison], 60);
    while (!settled) {
      assert.ok(deaths <= 2, `${deaths} consumers died on it`);
      const running = startConsumer(args, { REDIS_URL: redis.url });
      const next = await Promise.race([running.exited().then(() => 'died' as const), outcome]);
      if (next === 'died') {
        deaths++;
      } else {
        settled = next;
        await stop(running);
      }
    }
    assert.ok(deaths >= 1, 'it killed a consumer');
    assert.deepEqual(settled, ['WorkerDiedError']);
    // A short lease: the neighbour may still sit with a consumer that just died, to be adopted.
    const last = await consumer(['-w', '1', '--lease', '1']);
    let value: unknown;
    try {
      value = await neighbour.get({ blocking: true, timeout: 60 });
    } catch (error) {
      // Say where it is: its record, the queue, the claims and dead letters, and what the consumer logged.
      const { huey } = fixture;
      const claims = await Promise.all(Object.keys(await huey.storage.statuses()).map((id) => huey.storage.claimed(id)));
      const where = { status: await neighbour.status(), pending: await huey.pendingCount(), claimed: claims.flat().length, dead: await huey.storage.deadLetters(), leases: await huey.storage.expiredLeases() };
      assert.fail(`the neighbour did not run: ${String(error)}; ${JSON.stringify(where)}\n${last.output}`);
    }
    assert.equal(value, 7);
    await stop(last);
  });

  it('fails for good, without running it, a message taken back unstarted from dead consumers more than maxStalls times', async () => {
    const { huey } = fixture;
    const stuck = fixture.quick(1);
    await stuck.enqueued;
    const adopter = new Consumer(huey, { maxStalls: 1 });
    // Two consumers in turn claim it and die before its start is recorded: the first time it goes back, the second it fails.
    for (let round = 1; round <= 2; round++) {
      const owner = `dead-${round}.w1`;
      await huey.storage.renewLeases([owner], 1);
      const claim = await huey.storage.dequeue(owner);
      assert.equal(claim?.data.includes(stuck.id), true, `round ${round} claims it`);
      await until('the lease has run out', async () => (await huey.storage.expiredLeases()).includes(owner));
      assert.equal(await adopter.adoptOrphans(), round <= 1 ? 0 : 1, `round ${round}`);
    }
    await assert.rejects(stuck.get({ blocking: true, timeout: 5 }), (error: unknown) => {
      assert.ok(error instanceof TaskError, String(error));
      assert.equal(error.remote.name, 'WorkerDiedError');
      assert.match(error.remote.message, /max stalls/);
      return true;
    });
    assert.equal(await huey.pendingCount(), 0);
  });

  it('lets process workers whose consumer was SIGKILLed finish their runs and give back the rest, without crashing', async () => {
    const first = await consumer(['-w', '2', '-k', 'process', '--lease', '2']);
    const slow = [fixture.slow(1500), fixture.slow(1500)];
    await Promise.all(slow.map((r) => r.enqueued));
    await first.waitFor(/executing slow [\s\S]*executing slow/);
    const rest = Array.from({ length: 20 }, (_, i) => fixture.quick(i));
    await Promise.all(rest.map((r) => r.enqueued));
    const workers = childrenOf(first.child.pid!);
    assert.equal(workers.length, 2, 'two worker processes');
    first.child.kill('SIGKILL');
    await first.exited();
    await until('the orphaned workers have exited', () => workers.every((pid) => !alive(pid)));
    assert.deepEqual(await outcomes(slow, 5), [1500, 1500], 'the orphans finished their runs');
    assert.doesNotMatch(first.output, /ERR_IPC_CHANNEL_CLOSED|EPIPE|Unhandled|uncaught/i);

    const second = await consumer(['-w', '2']);
    assert.deepEqual(await outcomes(rest), Array.from({ length: 20 }, (_, i) => i));
    assert.doesNotMatch(second.output, /ran out/, 'the orphans kept their leases and dropped them: nothing to adopt');
    await stop(second);
  });

  it('ends an orphaned process worker whose run outlasts the grace period, and its run fails through adoption', async () => {
    const first = await consumer(['-w', '1', '-k', 'process', '--lease', '1', '-g', '1']);
    const stuck = fixture.hang();
    await stuck.enqueued;
    // Once its status lists the run, its start is surely recorded.
    await until('the run shows', async () => Object.values(await fixture.huey.storage.statuses()).some((status) => status.includes(stuck.id)));
    const workers = childrenOf(first.child.pid!);
    first.child.kill('SIGKILL');
    await first.exited();
    await until('the orphan has exited', () => workers.every((pid) => !alive(pid)));
    assert.match(first.output, /runs still going 1s after the consumer died: exiting/);
    const second = await consumer(['-w', '1', '--lease', '1']);
    assert.deepEqual(await outcomes([stuck], 20), ['WorkerDiedError']);
    await stop(second);
  });

  it('gives back tasks claimed ahead of a run that never ends, so idle workers run them', async () => {
    const before = Array.from({ length: 300 }, (_, i) => fixture.instant(i));
    const stuck = fixture.hang();
    const behind = Array.from({ length: 300 }, (_, i) => fixture.instant(1000 + i));
    await Promise.all([...before, stuck, ...behind].map((r) => r.enqueued));
    const running = await consumer(['-w', '2', '-k', 'process', '-g', '1']);
    // The stuck task sleeps 60 s: without the give-back, whatever was claimed with it waits that long.
    assert.deepEqual(await outcomes(behind, 20), Array.from({ length: 300 }, (_, i) => 1000 + i));
    assert.deepEqual(await outcomes(before, 20), Array.from({ length: 300 }, (_, i) => i));
    await stop(running);
  });

  it('replaces a process worker as soon as it dies, and backs off while a new one dies at start', async () => {
    const flag = join(tmpdir(), `huey-crash-at-start-${process.pid}`);
    rmSync(flag, { force: true });
    // Health checks every 120 s: any replacement seen here came from the exit itself.
    const running = await consumer(['-w', '1', '-k', 'process', '-c', '120'], { CRASH_AT_START: flag });
    const killer = fixture.exitsWorker();
    const next = Array.from({ length: 5 }, (_, i) => fixture.quick(i));
    await Promise.all([killer, ...next].map((r) => r.enqueued));
    assert.deepEqual(await outcomes([killer]), ['WorkerDiedError']);
    assert.deepEqual(await outcomes(next, 20), [0, 1, 2, 3, 4]);
    await running.waitFor(/worker \S+ was replaced/);

    // Now replacements fail at start: they are retried after 1 s, 2 s, ... until one starts.
    writeFileSync(flag, '');
    const again = fixture.exitsWorker();
    await running.waitFor(/could not start \S+: .*fails at start.*; trying again in 2s/);
    rmSync(flag);
    assert.deepEqual(await outcomes([again]), ['WorkerDiedError']);
    assert.equal(await fixture.quick(42).get({ blocking: true, timeout: 20 }), 42);
    await stop(running);
  });
  it('lets process workers finish their runs when Ctrl-C signals the whole process group', async () => {
    // As in a terminal: the consumer leads its own group, and SIGINT goes to every process in it.
    const running = new Spawned(process.execPath, [CONSUMER_BIN, 'test/fixtures/crashes.huey', '-w', '2', '-k', 'process', '-g', '20'], { REDIS_URL: redis.url }, true);
    await running.waitFor(/consumer running with/);
    const slow = fixture.slow(1500);
    await running.waitFor(new RegExp(`executing slow ${slow.id}`));
    process.kill(-running.child.pid!, 'SIGINT');
    assert.equal(await running.exited(), 0, running.output);
    assert.match(running.output, new RegExp(`slow ${slow.id} executed in`));
    assert.equal(await slow.get({ blocking: true, timeout: 5 }), 1500);
  });

  it('stops for good when Ctrl-C comes while it is still starting: no worker starts after it', async () => {
    // As in a terminal: the consumer leads its own group, and SIGINT goes to every process in it.
    const starting = new Spawned(process.execPath, [CONSUMER_BIN, 'test/fixtures/crashes.huey', '-w', '2', '-k', 'process'], { REDIS_URL: redis.url }, true);
    // The banner comes once it has connected, before any worker is started.
    await starting.waitFor(/huey-ts consumer for "fixture-crashes"/);
    process.kill(-starting.child.pid!, 'SIGINT');
    assert.equal(await starting.exited(), 0, starting.output);
    assert.match(starting.output, /consumer stopped/);
    assert.doesNotMatch(starting.output, /consumer running with/, 'it said it was running after it was stopped');
    assert.doesNotMatch(starting.output, /process worker started/);
    // Nothing was claimed: a task enqueued now waits for the next consumer.
    const later = fixture.instant(7);
    assert.deepEqual((await fixture.huey.pending()).map((message) => message.id), [later.id]);
  });

  it('shuts down cleanly when its output pipe has closed, as with `| tee` and Ctrl-C', async () => {
    const running = await consumer(['-w', '1', '-g', '20']);
    const slow = fixture.slow(1000);
    await running.waitFor(new RegExp(`executing slow ${slow.id}`));
    // The reader of its output goes away: every line from now on meets a closed pipe.
    running.child.stdout!.destroy();
    running.child.stderr!.destroy();
    running.child.kill('SIGINT');
    assert.equal(await running.exited(), 0);
    assert.equal(await slow.get({ blocking: true, timeout: 5 }), 1000);
  });

  it('leaves no worker shown as running after a shutdown that interrupted a task', async () => {
    for (const type of ['async', 'process']) {
      const running = await consumer(['-w', '1', '-k', type, '-g', '1']);
      const stuck = fixture.hang();
      await until('the run shows', async () => Object.values(await fixture.huey.storage.statuses()).some((status) => status.includes(stuck.id)));
      running.child.kill('SIGTERM');
      assert.equal(await running.exited(), 0, running.output);
      assert.match(running.output, /was interrupted and is back on the queue/);
      assert.deepEqual(await fixture.huey.storage.statuses(), {}, `${type} workers' statuses are gone`);
      await fixture.huey.storage.flushAll();
    }
  });

  it('runs several tasks at once in each process worker with --concurrency', async () => {
    const running = await consumer(['-w', '1', '-k', 'process', '--concurrency', '4']);
    assert.match(running.output, /workers: 1 process, 4 tasks at once each/);
    // Four runs that each wait for all four to have started: they pass only if they run together.
    const runs = Array.from({ length: 4 }, () => fixture.barrier('barrier-1', 4));
    assert.deepEqual(await outcomes(runs), [true, true, true, true]);
    await stop(running);
  });

  it('starts one process worker alone and the others once it is ready, so tasks run before all have loaded', async () => {
    const running = await consumer(['-w', '3', '-k', 'process'], { ANNOUNCE_LOAD: '1' });
    const firstReady = running.output.search(/(?:thread|process) worker started \(pid \d+\)/);
    const loads = [...running.output.matchAll(/fixture loading in pid (\d+)/g)];
    assert.equal(loads.length, 3, running.output);
    assert.ok(firstReady > loads[0]!.index!, running.output);
    for (const later of loads.slice(1)) assert.ok(later.index! > firstReady, `a worker began loading before the first was ready:\n${running.output}`);
    await stop(running);
  });

  it('refuses --concurrency for async workers, naming the flag to use', async () => {
    const refused = startConsumer(['test/fixtures/crashes.huey', '-w', '2', '--concurrency', '4'], { REDIS_URL: redis.url });
    assert.equal(await refused.exited(), 1);
    assert.match(refused.output, /--concurrency is for thread and process workers; async workers run --workers tasks at once/);
  });
});
