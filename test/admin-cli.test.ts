import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createClient } from '@redis/client';
import { after, before, describe, it } from 'node:test';
import { Worker } from '../src/consumer/worker.js';
import { killAll, ROOT, Spawned } from './support/processes.js';
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
  await killAll();
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

    // A mistyped id is refused, not silently "revoked"; --force revokes an id yet to be used.
    const typo = await admin('revoke', 'examples/simple/main.huey', `${task.id}x`);
    assert.equal(typo.code, 2);
    assert.match(typo.stdout, /no task \S+x is pending, scheduled, claimed or running.*--force/);
    assert.equal(await huey.isRevokedId(`${task.id}x`), false);
    assert.deepEqual(await json('revoke', 'examples/simple/main.huey', 'future-id', '--force'), { revoked: 'future-id' });
    assert.equal(await huey.restoreById('future-id'), true);
    const later = example.add.schedule({ args: [1, 1], delay: 3600 });
    await later.enqueued;
    assert.equal((await admin('revoke', 'examples/simple/main.huey', later.id)).code, 0, 'a scheduled task is known');
    await huey.storage.flushSchedule();
    await huey.restoreById(later.id);

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
    const [letter] = (await json('dead-letters', 'examples/simple/main.huey')) as Array<{ at: string; reason: string; message: { id: string; name: string } }>;
    assert.equal(letter?.message.id, 'stray-1', 'the message as JSON, not a string to parse again');
    assert.equal(letter?.message.name, 'noSuchTask');
    assert.match(letter!.reason, /unknown task/);
    assert.ok(!Number.isNaN(Date.parse(letter!.at)));

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

  it('lists a corrupt pending or scheduled item as corrupt, as text that cannot steer the terminal, and goes on', async () => {
    const client = createClient({ url: redis.url });
    await client.connect();
    try {
      // From an empty queue and schedule (the first test left a task scheduled).
      await huey.storage.flushQueue();
      await huey.storage.flushSchedule();
      const task = example.add(3, 4);
      await task.enqueued;
      // Straight into Redis, as a script or another program might: not task messages.
      await client.lPush('huey.{simple-example}.queue', 'garbage \u001b]0;owned\u0007\u001b[2J');
      await client.zAdd('huey.{simple-example}.schedule', { score: Date.now() + 60_000, value: '{"not": "a message"}' });

      const pending = await admin('pending', 'examples/simple/main.huey');
      assert.equal(pending.code, 0, pending.stderr);
      const lines = pending.stdout.trim().split('\n');
      assert.equal(lines.length, 2);
      assert.match(lines[0]!, new RegExp(`^${task.id}  add\\(3, 4\\)`));
      assert.match(lines[1]!, /^\(corrupt: payload is not valid JSON: .*\)  garbage \\u001b\]0;owned\\u0007\\u001b\[2J$/);
      assert.doesNotMatch(pending.stdout, /[\u0000-\u0008\u000b-\u001f\u007f]/, 'no control character reaches the terminal');

      const listed = (await json('pending', 'examples/simple/main.huey')) as Array<{ id?: string; corrupt?: boolean; preview?: string }>;
      assert.equal(listed[0]!.id, task.id);
      assert.equal(listed[1]!.corrupt, true);
      assert.equal(listed[1]!.preview, 'garbage \\u001b]0;owned\\u0007\\u001b[2J');

      const scheduled = await admin('scheduled', 'examples/simple/main.huey');
      assert.equal(scheduled.code, 0, scheduled.stderr);
      assert.match(scheduled.stdout.trim(), /^\(corrupt: payload is not a (valid )?task message\b.*\) {2}\{"not": "a message"\}$/);
      const info = await admin('info', 'examples/simple/main.huey');
      assert.equal(info.code, 0, info.stderr);
      assert.match(info.stdout, /^pending: 2\nscheduled: 1$/m);
    } finally {
      await huey.storage.flushQueue();
      await huey.storage.flushSchedule();
      await client.quit();
    }
  });

  it('serves the dashboard without writing its token to the log', async () => {
    const token = 'tok-8e1f3a7c';
    const server = new Spawned(process.execPath, ['dist/cli/huey.js', 'dashboard', 'examples/simple/main.huey', '--port', '0', '--token', token], { REDIS_URL: redis.url });
    const [, url] = (await server.waitFor(/dashboard for "simple-example" at (http:\/\/\S+) \(add \?token= with the --token given\)/)) as RegExpMatchArray;
    assert.equal((await fetch(new URL(`/api/snapshot?token=${token}`, url))).status, 200);
    // A refused action is logged with its address, where the token was.
    const refused = await fetch(new URL(`/api/action?token=${token}`, url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ action: 'run-periodic', target: 'add' }) });
    assert.equal(refused.status, 400);
    await server.waitFor(/dashboard: POST \/api\/action\?token=<redacted> failed: add is not a periodic task/);
    server.child.kill('SIGTERM');
    assert.equal(await server.exited(), 0, server.output);
    assert.ok(!server.output.includes(token), `no log line has the token:\n${server.output}`);
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
