import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { StorageError, TaskError } from '../src/index.js';
import { killAll, startConsumer, type Spawned } from './support/processes.js';
import { startRedis, type TestRedis } from './support/redis-server.js';

// The fault suite: crashes, a Redis restart, and bad input, against the real consumer.

let redis: TestRedis;
let fixture: typeof import('./fixtures/faults.js');

before(async () => {
  // Persistent, so that a restart mid-run keeps what Redis had acknowledged.
  redis = await startRedis({ persistent: true });
  process.env.REDIS_URL = redis.url;
  fixture = await import('./fixtures/faults.js');
});
after(async () => {
  await killAll();
  await fixture.huey.close();
  await redis.close();
});

async function consumer(args: string[] = []): Promise<Spawned> {
  const started = startConsumer(['test/fixtures/faults.huey', ...(args.includes('-w') ? [] : ['-w', '2']), ...args], { REDIS_URL: redis.url });
  await started.waitFor(/consumer running with/);
  return started;
}

async function stop(running: Spawned): Promise<void> {
  running.child.kill('SIGTERM');
  assert.equal(await running.exited(), 0, running.output);
}

describe('fault suite', () => {
  it('finishes the task of a consumer killed with SIGKILL, through another consumer once the lease runs out', async () => {
    const first = await consumer(['--lease', '1']);
    const result = fixture.hangOnce('crash');
    const deadline = Date.now() + 15_000;
    while (!(await fixture.huey.storage.hasDataForKey(`running.${result.id}`))) assert.ok(Date.now() < deadline, 'the run starts');
    first.child.kill('SIGKILL');
    await first.exited();

    const second = await consumer(['--lease', '1']);
    assert.equal(await result.get({ blocking: true, timeout: 20 }), 'crash done on the retry');
    assert.match(second.output, /the lease of \S+ ran out: of the tasks it held, 1 had started and fail as runs, 0 had not/);
    await stop(second);
  });

  it('loses nothing when Redis restarts mid-run', async () => {
    const running = await consumer(['-w', '4']);
    const results = Array.from({ length: 200 }, (_, i) => fixture.double(i));
    await Promise.all(results.map((r) => r.enqueued));
    await running.waitFor(/executed in/);

    await redis.stop(true); // SIGKILL: appendfsync always keeps every acknowledged write
    // A producer hears about the outage at once instead of losing its task.
    await assert.rejects(fixture.double.enqueue(-1), (error: unknown) => {
      assert.ok(error instanceof StorageError, String(error));
      assert.match(error.message, /unreachable|closed|ECONNREFUSED/);
      return true;
    });
    await running.waitFor(/storage error, retrying in/);
    await redis.restart();

    const values = [];
    for (const r of results) values.push(await r.get({ blocking: true, timeout: 30 }));
    assert.deepEqual(values, Array.from({ length: 200 }, (_, i) => i * 2));
    assert.equal(running.child.exitCode, null, 'the consumer stayed up through the outage');
    await stop(running);
    assert.equal(await fixture.huey.pendingCount(), 0);
  });

  it('dead-letters corrupt, unknown and oversized messages and carries on', async () => {
    const running = await consumer();
    const { storage } = fixture.huey;
    await storage.enqueue('{"truncated": ');
    await storage.enqueue(JSON.stringify({ id: 'ghost-1', name: 'ghost', args: [], retries: 0 }));
    await storage.enqueue(JSON.stringify({ id: 'big-1', name: 'double', args: ['x'.repeat(100_000)], retries: 0 }));
    assert.equal(await fixture.double(21).get({ blocking: true, timeout: 10 }), 42);

    const reasons = (await storage.deadLetters()).map((letter) => letter.reason).join('\n');
    assert.match(reasons, /corrupt payload: SerializationError: payload is not valid JSON/);
    assert.match(reasons, /unknown task "ghost"/);
    assert.match(reasons, /payload of 1000\d\d bytes is over the limit of 65536/);
    // The producer side refuses the same oversized call with a clear error.
    assert.throws(() => fixture.double('x'.repeat(100_000) as unknown as number), /its message is \d+ bytes, over the limit of 65536/);

    await assert.rejects(fixture.throwsString().get({ blocking: true, timeout: 10 }), (error: unknown) => {
      assert.ok(error instanceof TaskError);
      assert.equal(error.remote.name, 'NonErrorThrown');
      assert.match(error.remote.message, /plain string/);
      return true;
    });
    await assert.rejects(fixture.returnsFunction().get({ blocking: true, timeout: 10 }), /returned a value that cannot be stored: .*callback is a function/);
    await stop(running);
  });
});
