import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { RedisHuey } from '../../src/index.js';
import { Worker } from '../../src/consumer/worker.js';
import type { RedisStorageOptions } from '../../src/storage/redis/redis-storage.js';
import { until } from './redis-sentinel.js';

/** How one failover drill went, for the test's log line. */
export interface FailoverReport {
  timings: Record<string, number>;
  accepted: number;
  refusedDuringFailover: number;
  acceptedButLost: number;
  ranTwice: number;
  clientErrors: number;
}

export interface FailoverDrill {
  /** How the producer and the consumer connect (`{ sentinel }` or `{ cluster }`), given where their client errors go. */
  connection: (onError: (error: Error) => void) => RedisStorageOptions;
  workerId: string;
  /** Kill the master that holds the instance, whose storage is given; resolves once it is dead. */
  killMaster: (storage: RedisHuey['storage']) => Promise<void>;
  /** True once a replica serves in the dead master's place. */
  promoted: () => Promise<boolean>;
  /** The longest any one wait may take, in ms. */
  deadline: number;
}

/**
 * A producer and a worker of one instance through a failover: a batch runs
 * before; enqueues trickle every 10 ms while the master is killed and a
 * replica promoted; a fresh batch runs after, its results read, with no
 * restart. Counts what was refused (the producer knows), lost (accepted, never
 * run: asynchronous replication may lose the last writes) and run twice,
 * asserting only that the loss is bounded.
 */
export async function failoverDrill(drill: FailoverDrill): Promise<FailoverReport> {
  const name = `failover-${randomUUID().slice(0, 8)}`;
  const errors: string[] = [];
  const options = drill.connection((error) => errors.push(error.message));
  const producer = new RedisHuey(name, options);
  const consumer = new RedisHuey(name, options);
  const runs = new Map<number, number>();
  const define = (huey: RedisHuey) =>
    huey.task()(function record(i: number) {
      if (huey === consumer) runs.set(i, (runs.get(i) ?? 0) + 1);
      return i * 2;
    });
  const record = define(producer);
  define(consumer);
  const worker = new Worker(consumer, drill.workerId, { blockingTimeout: 0.2 });
  const running = worker.run();
  const started = Date.now();
  const timings: Record<string, number> = {};
  let next = 0;
  const accepted: number[] = []; // enqueues Redis acknowledged
  const refused: number[] = []; // enqueues that failed: the producer knows they did not happen
  const enqueue = async (i: number) => {
    try {
      await record(i).enqueued;
      accepted.push(i);
    } catch {
      refused.push(i);
    }
  };
  const allRan = (ids: number[]) => () => Promise.resolve(ids.every((i) => runs.has(i)));

  try {
    // Before: a batch goes through.
    const before = Array.from({ length: 30 }, () => next++);
    await Promise.all(before.map(enqueue));
    assert.equal(refused.length, 0);
    await until('the first batch to run', allRan(before), drill.deadline);
    assert.equal(await record(-1).get({ blocking: true, timeout: 30 }), -2);
    timings.warmUp = Date.now() - started;

    // During: a steady trickle of enqueues, not awaited one by one, while the master dies.
    let producing = true;
    const pending: Array<Promise<void>> = [];
    const trickle = (async () => {
      while (producing) {
        pending.push(enqueue(next++));
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await Promise.all(pending);
    })();
    await until('the worker to be busy', () => Promise.resolve(runs.size > before.length + 20), drill.deadline, 20);
    const killedAt = Date.now();
    await drill.killMaster(producer.storage);
    await until('a replica to be promoted', drill.promoted, drill.deadline, 100);
    timings.promotion = Date.now() - killedAt;
    const afterPromotion = next;
    await until('enqueues to succeed on the new master', () => Promise.resolve(accepted.some((i) => i >= afterPromotion)), drill.deadline, 50);
    timings.firstEnqueueAfterPromotion = Date.now() - killedAt;
    producing = false;
    await trickle;

    // After: a fresh batch completes, and its results are readable.
    const later = Array.from({ length: 30 }, () => next++);
    const results = later.map((i) => record(i));
    for (const result of results) await result.enqueued;
    const values = await Promise.all(results.map((result) => result.get({ blocking: true, timeout: drill.deadline / 1000 })));
    assert.deepEqual(
      values,
      later.map((i) => i * 2),
    );
    timings.recovered = Date.now() - killedAt;

    // Let whatever was accepted and survived finish, then count.
    await until('the queue to drain', async () => (await producer.storage.queueSize()) === 0, drill.deadline, 200);
    await until('the worker to finish what it holds', async () => (await producer.storage.claimed(drill.workerId)).length === 0, drill.deadline);
    const lost = accepted.filter((i) => !runs.has(i));
    const twice = [...runs].filter(([, count]) => count > 1);
    const report = {
      timings,
      accepted: accepted.length,
      refusedDuringFailover: refused.length,
      acceptedButLost: lost.length,
      ranTwice: twice.length,
      clientErrors: errors.length,
    };
    console.log(`# failover report: ${JSON.stringify(report)}`);
    assert.ok(lost.length < accepted.length / 2, `too many lost: ${lost.length} of ${accepted.length}`);
    return report;
  } finally {
    worker.stop();
    await running;
    await Promise.all([producer.close(), consumer.close()]);
  }
}
