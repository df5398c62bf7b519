import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, afterEach, before, describe, it } from 'node:test';
import { group } from '../src/index.js';
import { CONSUMER_BIN, killAll, ROOT, runScript, Spawned, startConsumer } from './support/processes.js';
import { startRedis, type TestRedis } from './support/redis-server.js';

// End to end: the real huey-consumer process on examples/simple, fed by other processes.

let redis: TestRedis;
let example: typeof import('../examples/simple/tasks.js');
let exampleHuey: typeof import('../examples/simple/config.js')['huey'];

before(async () => {
  redis = await startRedis();
  process.env.REDIS_URL = redis.url;
  example = await import('../examples/simple/tasks.js');
  exampleHuey = (await import('../examples/simple/config.js')).huey;
});

// A test that failed midway must not leave a consumer taking the next test's tasks.
afterEach(async () => {
  await killAll();
  await exampleHuey.storage.flushAll();
});

after(async () => {
  await killAll();
  await exampleHuey.close();
  await redis.close();
});

async function running(args: string[]): Promise<Spawned> {
  const consumer = startConsumer(args, { REDIS_URL: redis.url });
  await consumer.waitFor(/consumer running with/);
  return consumer;
}

/**
 * Wait until a worker's status lists task `id` as running. A thread or
 * process worker tells its consumer of a run once it outlasts a turn of the
 * event loop; the status, written once a second, comes later still, so a
 * worker killed after this had surely reported the run as started.
 */
async function reportedRunning(id: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!Object.values(await exampleHuey.storage.statuses()).some((status) => status.includes(id))) {
    assert.ok(Date.now() < deadline, `task ${id} shows as running`);
    await sleep(20);
  }
}

/** Worker id → pid, from the lines thread and process workers log as they start. */
function workerPids(consumer: Spawned): Map<string, number> {
  const pids = new Map<string, number>();
  for (const match of consumer.output.matchAll(/:huey:(\S+): (?:thread|process) worker started \(pid (\d+)\)/g)) {
    pids.set(match[1]!, Number(match[2]));
  }
  return pids;
}

for (const workerType of ['async', 'thread', 'process'] as const) {
  describe(`huey-consumer with ${workerType} workers`, () => {
    it('runs tasks enqueued by another process and finishes a slow task on SIGTERM', async () => {
      const consumer = await running(['examples/simple/main.huey', '-w', '2', '-k', workerType, '-g', '20']);
      assert.match(consumer.output, new RegExp(`workers: 2 ${workerType}`));
      assert.match(consumer.output, /\+ Beans\.countBeans\n\+ add\n\+ flaky\n\+ heartbeat \(periodic crontab\(minute=\*\/5 hour=\* day=\* month=\* dayOfWeek=\*\), next run \d{4}-\d\d-\d\dT\d\d:\d[05]:00Z\)\n\+ slowAdd/);

      const producer = await runScript('examples/simple/producer.ts', { REDIS_URL: redis.url });
      assert.equal(producer.code, 0, producer.output);
      assert.match(producer.output, /add\(1, 2\) = 3/);
      assert.match(producer.output, /countBeans\(100\) = "Counted 100 beans"/);
      assert.match(producer.output, /slowAdd\(2, 3, 1\) = 5/);
      assert.match(producer.output, /flaky\('demo'\) = "demo-\d+ worked on try 3"/);

      const slow = example.slowAdd(20, 22, 1.5);
      await consumer.waitFor(new RegExp(`executing slowAdd ${slow.id}`));
      consumer.child.kill('SIGTERM');
      assert.equal(await consumer.exited(), 0, consumer.output);
      assert.match(consumer.output, new RegExp(`slowAdd ${slow.id} executed in`));
      assert.equal(await slow.get({ blocking: true, timeout: 5 }), 42);
      assert.equal(await exampleHuey.pendingCount(), 0);
    });
  });
}

describe('huey-consumer worker health', () => {
  it('replaces a killed process worker and settles the task it held', async () => {
    const consumer = await running(['examples/simple/main.huey', '-w', '2', '-k', 'process', '-c', '0.2']);
    const slow = example.slowAdd(1, 1, 30);
    const [, workerId] = (await consumer.waitFor(new RegExp(`:huey:(\\S+): executing slowAdd ${slow.id}`))) as RegExpMatchArray;
    const pid = workerPids(consumer).get(workerId!);
    assert.ok(pid, `pid of ${workerId} in:\n${consumer.output}`);
    await reportedRunning(slow.id);
    process.kill(pid, 'SIGKILL');
    await consumer.waitFor(new RegExp(`worker ${workerId} was replaced`));
    // slowAdd has no retries: the run that killed its worker fails for good, visibly.
    await assert.rejects(slow.get({ blocking: true, timeout: 10 }), /WorkerDiedError: the process worker running this task was killed by SIGKILL/);
    // The replacement takes new work too.
    const sum = example.add(2, 2);
    assert.equal(await sum.get({ blocking: true, timeout: 10 }), 4);

    const held = example.slowAdd(2, 2, 30);
    await consumer.waitFor(new RegExp(`executing slowAdd ${held.id}`));
    consumer.child.kill('SIGINT');
    await consumer.waitFor(/received SIGINT/);
    consumer.child.kill('SIGINT');
    assert.equal(await consumer.exited(), 1);
    // A second SIGINT leaves at once, but puts the running task back first.
    assert.deepEqual((await exampleHuey.pending()).map((m) => m.id), [held.id]);
    await exampleHuey.storage.flushQueue();
  });
});

describe('huey-consumer with tasks claimed ahead', () => {
  it('fails only the running task of a killed process worker and runs the ones it had claimed ahead', async () => {
    // A wide prefetch window: what is claimed ahead is not given back while the test looks.
    const consumer = await running(['examples/simple/main.huey', '-w', '1', '-k', 'process', '-c', '0.2', '--prefetch-window', '2']);
    // A few quick runs teach the worker that tasks are fast, so it claims many per round trip.
    assert.equal(await example.add(1, 1).get({ blocking: true, timeout: 10 }), 2);
    assert.equal(await example.add(1, 2).get({ blocking: true, timeout: 10 }), 3);
    // One push: the first add wakes the idle worker, and the next claim takes the other three together.
    const batch = exampleHuey.enqueue(group([example.add.s(0, 1), example.slowAdd.s(1, 1, 30), example.add.s(2, 2), example.add.s(3, 3)]));
    await batch.enqueued;
    const slow = batch.at(1);
    const [, workerId] = (await consumer.waitFor(new RegExp(`:huey:(\\S+): executing slowAdd ${slow.id}`))) as RegExpMatchArray;
    // The first add's ack may still be on its way while slowAdd starts.
    const deadline = Date.now() + 5000;
    while ((await exampleHuey.storage.claimed(workerId!)).length > 3 && Date.now() < deadline) await sleep(10);
    assert.equal((await exampleHuey.storage.claimed(workerId!)).length, 3, 'the two adds after slowAdd are claimed ahead');
    await reportedRunning(slow.id);
    process.kill(workerPids(consumer).get(workerId!)!, 'SIGKILL');
    await assert.rejects(slow.get({ blocking: true, timeout: 10 }), /WorkerDiedError/);
    assert.equal(await batch.at(2).get({ blocking: true, timeout: 10 }), 4);
    assert.equal(await batch.at(3).get({ blocking: true, timeout: 10 }), 6);
    assert.match(consumer.output, /2 task\(s\) it had claimed and not started go back on the queue/);
    consumer.child.kill('SIGTERM');
    assert.equal(await consumer.exited(), 0, consumer.output);
  });
});

describe('huey-consumer restart and logging', () => {
  it('restarts thread workers on SIGHUP and writes a simple log file', async () => {
    const logfile = join(mkdtempSync(join(tmpdir(), 'huey-log-')), 'consumer.log');
    const consumer = await running(['examples/simple/main.huey', '-w', '2', '-k', 'thread', '-l', logfile, '-S']);
    const before = [...workerPids(consumer).keys()].length;
    assert.equal(before, 0, 'simple lines carry no worker names');
    assert.equal((consumer.output.match(/thread worker started/g) ?? []).length, 2);
    consumer.child.kill('SIGHUP');
    await consumer.waitFor(/restarting workers[\s\S]*thread worker started[\s\S]*thread worker started/);
    assert.equal(await example.add(5, 6).get({ blocking: true, timeout: 10 }), 11);
    consumer.child.kill('SIGTERM');
    assert.equal(await consumer.exited(), 0);
    const written = readFileSync(logfile, 'utf8');
    assert.match(written, /^huey-ts consumer for "simple-example"/);
    assert.match(written, /^restarting workers$/m);
    assert.match(written, /^add [0-9a-f-]+ executed in \d/m);
  });
});

describe('huey-consumer and the Redis it is given', () => {
  it('warns at start when Redis may evict keys, and not when it may not', async () => {
    const evicting = await startRedis({ args: ['--maxmemory-policy', 'allkeys-lru'] });
    try {
      const consumer = startConsumer(['examples/simple/main.huey', '-w', '1'], { REDIS_URL: evicting.url });
      await consumer.waitFor(/consumer running with/);
      assert.match(consumer.output, /WARNING:huey:.*maxmemory-policy "allkeys-lru".*Set maxmemory-policy noeviction/);
      consumer.child.kill('SIGTERM');
      assert.equal(await consumer.exited(), 0);
    } finally {
      await evicting.close();
    }
    const safe = await running(['examples/simple/main.huey', '-w', '1']);
    assert.doesNotMatch(safe.output, /maxmemory-policy/);
  });
});

describe('huey-consumer under systemd', () => {
  it('runs from node_modules/.bin as the main process: reload restarts the workers, stop lets the running task finish', async () => {
    // An app's node_modules as npm lays it out: the package, and its bin linked (and made executable) in .bin.
    const app = mkdtempSync(join(tmpdir(), 'huey-systemd-'));
    mkdirSync(join(app, 'node_modules/.bin'), { recursive: true });
    symlinkSync(ROOT, join(app, 'node_modules/huey-ts'));
    chmodSync(CONSUMER_BIN, 0o755);
    const bin = join(app, 'node_modules/.bin/huey-consumer');
    symlinkSync('../huey-ts/dist/cli/huey-consumer.js', bin);

    // ExecStart= the bin itself; the unit's processes share a group, as they share a cgroup.
    const consumer = new Spawned(bin, ['examples/simple/main.huey', '-w', '2', '-k', 'process', '--grace-period', '15'], { REDIS_URL: redis.url }, true);
    await consumer.waitFor(/consumer running with/);
    const mainPid = consumer.child.pid!;
    assert.match(readFileSync(`/proc/${mainPid}/cmdline`, 'utf8'), /huey-consumer\0examples\/simple\/main\.huey/, '$MAINPID is the consumer, not a wrapper');
    const first = new Set(workerPids(consumer).values());
    assert.equal(first.size, 2);

    // ExecReload=/bin/kill -HUP $MAINPID
    process.kill(mainPid, 'SIGHUP');
    await consumer.waitFor(/restarting workers[\s\S]*process worker started[\s\S]*process worker started/);
    const pids = [...consumer.output.matchAll(/process worker started \(pid (\d+)\)/g)].map((match) => Number(match[1]));
    assert.equal(pids.length, 4);
    assert.ok(pids.slice(2).every((pid) => !first.has(pid)), 'new worker processes after the reload');
    assert.equal(await example.add(2, 3).get({ blocking: true, timeout: 10 }), 5);

    // systemctl stop: SIGTERM to every process of the unit (KillMode=control-group), within TimeoutStopSec.
    const slow = example.slowAdd(1, 2, 1.5);
    await reportedRunning(slow.id);
    process.kill(-mainPid, 'SIGTERM');
    assert.equal(await consumer.exited(20_000), 0, consumer.output);
    assert.equal(await slow.get({ blocking: true, timeout: 5 }), 3, 'the running task finished within the grace period');
  });
});

describe('huey-consumer module errors', () => {
  const fail = (spec: string) => {
    try {
      execFileSync(process.execPath, ['dist/cli/huey-consumer.js', spec], { encoding: 'utf8', stdio: 'pipe' });
    } catch (error) {
      const { status, stderr } = error as { status: number; stderr: string };
      return { status, stderr };
    }
    throw new Error(`huey-consumer ${spec} should have failed`);
  };

  it('names the module, the export and the cause in one line', () => {
    const missing = fail('nowhere/main.huey');
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /^huey-consumer: cannot load "nowhere\/main.huey": no module "nowhere\/main"/);
    assert.equal(missing.stderr.trim().split('\n').length, 1);

    const broken = fail('test/fixtures/broken-module.huey');
    assert.match(broken.stderr, /cannot load "test\/fixtures\/broken-module.huey": module .*broken-module.ts failed to import: Error: database settings missing/);
    assert.equal(broken.stderr.trim().split('\n').length, 1);

    const noExport = fail('test.fixtures.no-huey.huey');
    assert.match(noExport.stderr, /has no export "huey" \(exports: notHuey\)/);

    const notHuey = fail('test/fixtures/no-huey.notHuey');
    assert.match(notHuey.stderr, /export "notHuey" of .* is not a Huey instance/);
  });

  it('accepts dotted and slashed module paths', async () => {
    for (const spec of ['examples.simple.main.huey', 'examples/simple/main.ts.huey']) {
      const consumer = await running([spec, '-w', '1']);
      consumer.child.kill('SIGTERM');
      assert.equal(await consumer.exited(), 0, consumer.output);
    }
  });
});
