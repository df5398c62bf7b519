import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Huey, HueyError, TaskError, type Result, type Storage } from '../src/index.js';
import { Worker } from '../src/consumer/index.js';
import { killAll, startConsumer } from './support/processes.js';
import { testStorages } from './support/test-storages.js';

// Dependencies: a task called with dependsOn waits, deferred, until every task it depends on
// completed, then runs once; a parent that fails for good or is revoked fails it, naming the
// parent (or it runs anyway, by option); across queues, pipelines and groups, and through a
// consumer SIGKILLed while the parent ran.

const { dir, kinds, fresh, redis } = testStorages('dependencies');

function app(storage: Storage, records = true) {
  const huey = new Huey(fresh(), { storage, records });
  huey.queue('reports');
  const order: string[] = [];
  const step = huey.task()(function step(name: string) {
    order.push(name);
    return name;
  });
  const report = huey.task({ queue: 'reports' })(function report(name: string) {
    order.push(name);
    return name;
  });
  const broken = huey.task()(function broken() {
    throw new Error('parent broke');
  });
  const after = huey.task()(function after(name: string, previous: string) {
    order.push(name);
    return `${previous} then ${name}`;
  });
  return { huey, order, step, report, broken, after };
}

/** Run what is due, moving the schedule along, until `done` holds or 10 s pass. */
async function runUntil(huey: Huey, done: () => Promise<boolean>): Promise<void> {
  const worker = new Worker(huey, 'w-deps');
  const deadline = Date.now() + 10_000;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error('ran out of time');
    for (const { storage } of huey.queueSources()) await storage.enqueueDue(Date.now());
    if ((await worker.runOnce(0)) === 0) await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const settled = (result: Result<unknown>) => async () => ['complete', 'failed'].includes((await result.status())?.state ?? '');

for (const [kind, make] of Object.entries(kinds)) {
  describe(`dependencies on ${kind}`, () => {
    it('defers a task until every task it depends on completed, on any queue, then runs it once', async () => {
      const { huey, order, step, report } = app(make());
      try {
        const a = step('a');
        const b = report('b');
        const d = step.schedule({ args: ['d'], delay: 0, dependsOn: [a, b] });
        await d.enqueued;
        // A worker of the default queue alone runs a, then d looks: b (on reports) has not run, so d waits.
        const worker = new Worker(huey, 'w-first', { queues: ['default'] });
        for (let i = 0; i < 10 && (await d.status())?.state !== 'deferred'; i++) await worker.runOnce(0);
        assert.deepEqual(order, ['a'], 'a ran; d looked and waited');
        const waiting = (await d.status())!;
        assert.equal(waiting.state, 'deferred');
        assert.ok([a.id, b.id].includes(waiting.waitingOn!), 'it names a task it waits for');
        await runUntil(huey, settled(d));
        assert.deepEqual(order, ['a', 'b', 'd']);
        assert.equal(await d.get(), 'd');
        assert.ok((await d.status())!.started!.getTime() >= (await b.status())!.ended!.getTime());
      } finally {
        await huey.flush();
        await huey.close();
      }
    });

    it('fails a dependent whose parent failed for good or was revoked, naming it; or runs it, by option', async () => {
      const { huey, order, step, broken } = app(make());
      try {
        const parent = broken();
        const dependent = step.schedule({ args: ['after broken'], delay: 0, dependsOn: [parent] });
        const anyway = step.schedule({ args: ['anyway'], delay: 0, dependsOn: [parent], runOnParentFailure: true });
        // An id alone is checked at once: the task it names must be enqueued by then.
        const revoked = await step.enqueue('revoked');
        await revoked.revoke();
        const afterRevoked = step.schedule({ args: ['after revoked'], delay: 0, dependsOn: [revoked.id] });
        await Promise.all([dependent.enqueued, anyway.enqueued, afterRevoked.enqueued]);
        await runUntil(huey, async () => (await Promise.all([dependent, anyway, afterRevoked].map((r) => settled(r)()))).every(Boolean));
        await assert.rejects(dependent.get(), (error: TaskError) => error.name === 'TaskError' && /DependencyError/.test(error.message + error.remote?.name) && error.message.includes(parent.id));
        const failed = (await dependent.status())!;
        assert.equal(failed.state, 'failed');
        assert.equal(failed.error?.name, 'DependencyError');
        assert.match(failed.error!.message, new RegExp(`${parent.id}, ended failed \\(Error: parent broke\\)`));
        assert.equal(await anyway.get(), 'anyway');
        assert.match((await afterRevoked.status())!.error!.message, new RegExp(`${revoked.id}, ended revoked`));
        assert.deepEqual(order, ['anyway']);
      } finally {
        await huey.flush();
        await huey.close();
      }
    });

    it('waits in a pipeline and behind a group, and refuses an unknown parent or records off', async () => {
      const { huey, order, step, after } = app(make());
      try {
        const group = step.map([['g1'], ['g2']]);
        const pipeline = huey.enqueue(step.s('p1').with({ dependsOn: group.results }).then(after, 'p2'));
        await pipeline.enqueued;
        await runUntil(huey, settled(pipeline.results[1]!));
        assert.equal(await pipeline.results[1]!.get(), 'p1 then p2');
        assert.deepEqual(order.slice(2), ['p1', 'p2']);
        assert.deepEqual(order.slice(0, 2).sort(), ['g1', 'g2']);

        const unknown = step.schedule({ args: ['x'], delay: 0, dependsOn: ['no-such-task'] });
        await assert.rejects(unknown.enqueued, (error: Error) => error instanceof HueyError && /cannot depend on task no-such-task: this instance has no record of it/.test(error.message));
        assert.equal(await huey.pendingCount(), 0, 'nothing enqueued');
        assert.throws(() => step.schedule({ args: ['x'], delay: 0, dependsOn: [42 as never] }), /dependsOn takes Results or task ids/);
      } finally {
        await huey.flush();
        await huey.close();
      }
      const off = app(make(), false);
      try {
        await assert.rejects(off.step.schedule({ args: ['x'], delay: 0, dependsOn: ['a'] }).enqueued, /dependsOn needs task records/);
      } finally {
        await off.huey.close();
      }
    });
  });
}

describe('dependencies through the consumer CLI', () => {
  for (const kind of ['redis', 'sqlite'] as const) {
    it(`runs a dependent after its parents, and fails it when its parent's consumer was SIGKILLed, on ${kind}`, async () => {
      const env = kind === 'redis' ? { REDIS_URL: redis().url } : { HUEY_SQLITE_FILE: join(dir, 'cli.db') };
      Object.assign(process.env, env);
      const fixture = (await import(`./fixtures/dependencies.js?${kind}`)) as typeof import('./fixtures/dependencies.js');
      for (const name of Object.keys(env)) delete process.env[name];
      const { huey, prepare, publish } = fixture;
      try {
        const first = startConsumer(['test/fixtures/dependencies.huey', '-w', '2', '--lease', '1'], env);
        const a = prepare(300);
        const b = prepare(50);
        const d = publish.schedule({ args: [], delay: 0, dependsOn: [a, b] });
        assert.equal(await d.get({ blocking: true, timeout: 20 }), 'published');
        assert.ok((await d.status())!.started!.getTime() >= (await a.status())!.ended!.getTime(), 'after its slower parent');

        // A parent that will never finish: its consumer dies under it.
        const endless = prepare(600_000);
        const waiting = publish.schedule({ args: [], delay: 0, dependsOn: [endless] });
        await waiting.enqueued;
        const deadline = Date.now() + 10_000;
        while ((await endless.status())?.state !== 'running' && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
        first.child.kill('SIGKILL');
        await first.exited();
        const second = startConsumer(['test/fixtures/dependencies.huey', '-w', '2', '--lease', '1'], env);
        try {
          await assert.rejects(waiting.get({ blocking: true, timeout: 20 }), new RegExp(`depends on, ${endless.id}, ended failed \\(WorkerDiedError`));
          assert.equal((await endless.status())?.state, 'failed');
        } finally {
          second.child.kill('SIGTERM');
          await second.exited();
        }
      } finally {
        await killAll();
        await huey.flush();
        await huey.close();
      }
    });
  }
});
