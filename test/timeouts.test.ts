import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TaskError, TaskTimeout, type SignalName } from '../src/index.js';
import { Worker } from '../src/consumer/worker.js';
import { killAll, startConsumer } from './support/processes.js';
import { startRedis, type TestRedis } from './support/redis-server.js';

let redis: TestRedis;
let fixture: typeof import('./fixtures/timeouts.js');

before(async () => {
  redis = await startRedis();
  process.env.REDIS_URL = redis.url;
  fixture = await import('./fixtures/timeouts.js');
});
after(async () => {
  await killAll();
  await fixture.huey.close();
  await redis.close();
});

describe('task timeouts', () => {
  it('aborts an async run through its signal, signals timeout, and applies retries', async () => {
    const { huey, nap } = fixture;
    const signals: SignalName[] = [];
    const handler = huey.signal('timeout', 'retrying', 'error')((signal) => void signals.push(signal));
    const worker = new Worker(huey, 'timeout-async', { blockingTimeout: 0.1 });
    const running = worker.run();
    const started = Date.now();
    await assert.rejects(nap(10).get({ blocking: true, timeout: 10 }), (error: unknown) => {
      assert.ok(error instanceof TaskError);
      assert.equal(error.remote.name, 'TaskTimeout');
      assert.match(error.remote.message, /ran past its timeout of 0.3s/);
      return true;
    });
    assert.ok(Date.now() - started < 5000, 'the aborted sleeps did not run their 10 s');
    assert.deepEqual(signals, ['timeout', 'retrying', 'timeout']);
    // A per-call timeout overrides the task's.
    assert.equal(await nap.schedule({ args: [0.2], delay: 0, timeout: 5 }).get({ blocking: true, timeout: 5 }), 'rested');
    huey.disconnectSignal(handler);
    worker.stop();
    await running;
  });

  for (const workerType of ['thread', 'process'] as const) {
    it(`terminates and replaces a ${workerType} worker stuck past its timeout`, async () => {
      const consumer = startConsumer(['test/fixtures/timeouts.huey', '-w', '1', '-k', workerType, '-C'], { REDIS_URL: redis.url });
      await consumer.waitFor(/consumer running with/);
      const stuck = fixture.spin(30);
      await assert.rejects(stuck.get({ blocking: true, timeout: 15 }), (error: unknown) => {
        assert.ok(error instanceof TaskError);
        assert.equal(error.remote.name, TaskTimeout.name);
        assert.match(error.remote.message, new RegExp(`its ${workerType} worker was terminated`));
        return true;
      });
      // With the health check off, only the timeout's own replacement can run this.
      assert.equal(await fixture.add(1, 2).get({ blocking: true, timeout: 15 }), 3);
      assert.equal((consumer.output.match(new RegExp(`${workerType} worker started`, 'g')) ?? []).length, 2);
      consumer.child.kill('SIGTERM');
      assert.equal(await consumer.exited(), 0, consumer.output);
    });
  }
});
