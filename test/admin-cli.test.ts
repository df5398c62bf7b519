import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { Worker } from '../src/consumer/worker.js';
import { ROOT } from './support/processes.js';
import { startRedis, type TestRedis } from './support/redis-server.js';

// End to end: the real `huey` admin command on examples/simple, against its own Redis.

let redis: TestRedis;
let example: typeof import('../examples/simple/tasks.js');
let huey: typeof import('../examples/simple/config.js')['huey'];

before(async () => {
  redis = await startRedis();
  process.env.REDIS_URL = redis.url;
  example = await import('../examples/simple/tasks.js');
  huey = (await import('../examples/simple/config.js')).huey;
});

after(async () => {
  await huey.close();
  await redis.close();
});

/** Run `huey ARGS`; resolves with its exit code and output (stdin is not a terminal). */
function admin(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['dist/cli/huey.js', ...args], { cwd: ROOT, env: { ...process.env, REDIS_URL: redis.url } }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const json = async (...args: string[]) => {
  const { code, stdout, stderr } = await admin(...args, '--json');
  assert.ok(code === 0 || code === 2, `huey ${args.join(' ')} exited ${code}: ${stderr}`);
  return JSON.parse(stdout) as Record<string, unknown> & unknown[];
};

describe('huey admin command', () => {
  it('shows counts, pending and scheduled tasks, and results, as text and as JSON', async () => {
    const sum = example.add(1, 2);
    const later = example.slowAdd.schedule({ args: [1, 1, 0], delay: 3600 });
    await Promise.all([sum.enqueued, later.enqueued]);

    const info = await json('info', 'examples/simple/main.huey');
    assert.equal(info.pending, 1);
    assert.equal(info.scheduled, 1);
    assert.ok((info.tasks as string[]).includes('add'));
    assert.match((await admin('info', 'examples/simple/main.huey')).stdout, /^huey "simple-example" on redis\npending: 1\nscheduled: 1/);

    const pending = await json('pending', 'examples/simple/main.huey');
    assert.deepEqual((pending as Array<{ id: string }>).map((m) => m.id), [sum.id]);
    assert.match((await admin('scheduled', 'examples/simple/main.huey')).stdout, new RegExp(`^${later.id}  slowAdd\\(1, 1, 0\\)  eta \\d{4}-`));

    const before = await admin('result', 'examples/simple/main.huey', sum.id);
    assert.equal(before.code, 2);
    assert.match(before.stdout, /no result stored/);
    assert.equal(await new Worker(huey, 'admin-test').runOnce(), 1);
    assert.deepEqual(await json('result', 'examples/simple/main.huey', sum.id), { value: 3 });
    // Reading through the command keeps the result for the program that waits on it.
    assert.equal(await sum.get(), 3);
  });

  it('revokes and restores by id, flushes locks, and purges only when told to', async () => {
    const task = example.add(2, 2);
    await task.enqueued;
    assert.equal((await admin('revoke', 'examples/simple/main.huey', task.id)).stdout.trim(), `revoked ${task.id}`);
    assert.equal(await huey.isRevokedId(task.id), true);
    assert.equal((await admin('restore', 'examples/simple/main.huey', task.id)).code, 0);
    assert.equal(await huey.isRevokedId(task.id), false);
    assert.equal((await admin('restore', 'examples/simple/main.huey', task.id)).code, 2, 'nothing to restore');

    await huey.lockTask('reports').acquire();
    assert.deepEqual(await json('flush-locks', 'examples/simple/main.huey'), { flushed: ['reports'] });
    assert.equal((await admin('flush-locks', 'examples/simple/main.huey')).stdout.trim(), 'no lock was held');

    const refused = await admin('purge', 'examples/simple/main.huey');
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /not asking without a terminal: pass --yes/);
    assert.equal(await huey.pendingCount(), 1);
    assert.deepEqual(await json('purge', 'examples/simple/main.huey', '--yes'), { purged: 1 });
    assert.equal(await huey.pendingCount(), 0);
  });

  it('lists dead letters and puts one back with retry; pauses and resumes', async () => {
    const stray = { id: 'stray-1', name: 'noSuchTask', args: [], retries: 0, retryDelay: 0, retryBackoff: 1, priority: 0, eta: null, expires: null };
    await huey.storage.enqueue(huey.serializeMessage(stray));
    assert.equal(await new Worker(huey, 'admin-test').runOnce(), 1);
    assert.match((await admin('dead-letters', 'examples/simple/main.huey')).stdout, /unknown task "noSuchTask"/);

    assert.equal((await admin('retry', 'examples/simple/main.huey', 'stray-1')).stdout.trim(), 'retried dead-lettered task noSuchTask stray-1');
    assert.deepEqual((await huey.pending()).map((m) => m.id), ['stray-1']);
    assert.equal((await huey.storage.deadLetters()).length, 0);
    const missing = await admin('retry', 'examples/simple/main.huey', 'stray-1');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no dead-lettered task stray-1/);
    await huey.storage.flushQueue();

    assert.equal((await admin('pause', 'examples/simple/main.huey')).code, 0);
    assert.equal(await huey.isPaused(), true);
    assert.match((await admin('info', 'examples/simple/main.huey')).stdout, /^PAUSED/m);
    assert.equal((await admin('resume', 'examples/simple/main.huey')).stdout.trim(), 'resumed');
    assert.equal(await huey.isPaused(), false);
  });

  it('names a module that will not load, and an unknown command, in one line', async () => {
    const missing = await admin('info', 'nowhere/main.huey');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^huey: cannot load "nowhere\/main.huey": no module "nowhere\/main"/);
    assert.equal(missing.stderr.trim().split('\n').length, 1);
    const unknown = await admin('frobnicate', 'examples/simple/main.huey');
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /Unknown arguments?: frobnicate/);
  });
});
