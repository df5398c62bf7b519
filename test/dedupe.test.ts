import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigurationError, Huey, RedisStorage, type Storage } from '../src/index.js';
import { Worker } from '../src/consumer/index.js';
import { dedupeKey } from '../src/dedupe.js';
import { startConsumer } from './support/processes.js';
import { testStorages } from './support/test-storages.js';

// Deduplication by key: while a task called with a key is enqueued, scheduled or running,
// another call with the key joins it; its end lets the key go; debounce replaces a call
// still waiting in the schedule; a key's time to live covers a producer that died.

const { dir, kinds: STORAGES, fresh, redis: testRedis } = testStorages('dedupe');

function app(storage: Storage) {
  const huey = new Huey(fresh(), { storage });
  const runs: number[] = [];
  const sync = huey.task({ key: (user: number) => `sync:${user}` })(function sync(user: number) {
    runs.push(user);
    return user * 10;
  });
  const send = huey.task()(function send(text: string) {
    return text;
  });
  const fragile = huey.task()(function fragile() {
    throw new Error('no');
  });
  return { huey, runs, sync, send, fragile };
}

async function drain(worker: Worker): Promise<void> {
  while ((await worker.runOnce(0)) > 0);
}

for (const [kind, make] of Object.entries(STORAGES)) {
  describe(`deduplication on ${kind}`, () => {
    it('joins a call to the pending one with its key, and lets the key go when it ends', async () => {
      const { huey, runs, sync } = app(make());
      try {
        const first = await sync.enqueue(42);
        const again = await sync.enqueue(42);
        const other = await sync.enqueue(7);
        assert.equal(again.id, first.id, 'the second call reads the first one');
        assert.notEqual(other.id, first.id, 'another key is another task');
        assert.equal(await huey.pendingCount(), 2);
        await drain(new Worker(huey, 'w1'));
        assert.deepEqual(runs.sort(), [42, 7].sort());
        assert.equal(await first.get({ preserve: true }), 420);
        assert.equal(await again.get(), 420, 'the joined handle reads the same task');
        // The run ended: the key is free, and the next call is a task of its own.
        assert.equal(await huey.storage.peekData(dedupeKey('sync:42')), null);
        const later = await sync.enqueue(42);
        assert.notEqual(later.id, first.id);
        assert.equal(await huey.pendingCount(), 1);
      } finally {
        await huey.flush();
        await huey.close();
      }
    });

    it('takes a per-call key, lets it go on a failure and a revocation, and refuses bad keys', async () => {
      const { huey, send, fragile } = app(make());
      try {
        const a = send.schedule({ args: ['hi'], delay: 0, key: 'greeting' });
        const b = send.schedule({ args: ['hello'], delay: 0, key: 'greeting' });
        await Promise.all([a.enqueued, b.enqueued]);
        assert.equal(b.id, a.id);
        await a.revoke();
        const failing = fragile.schedule({ args: [], delay: 0, key: 'fragile' });
        await failing.enqueued;
        await drain(new Worker(huey, 'w2'));
        assert.equal(await huey.storage.peekData(dedupeKey('greeting')), null, 'a revoked run lets its key go');
        assert.equal(await huey.storage.peekData(dedupeKey('fragile')), null, 'a failed run lets its key go');
        assert.throws(() => send.schedule({ args: ['x'], delay: 0, key: '' }), ConfigurationError);
        assert.throws(() => send.schedule({ args: ['x'], delay: 0, key: 'k'.repeat(513) }), /key must be a string of 1 to 512 characters/);
        assert.throws(() => huey.task({ key: 'fixed' as never })(function keyed() {}), /key must be a function/);
        const badKey = huey.task({ key: () => 42 as never })(function badKey() {});
        assert.throws(() => badKey(), /key\(\) computed must be a string/);
        assert.throws(() => send.schedule({ args: ['x'], delay: 0, key: 'k', keyTtl: -1 }), /keyTtl must be/);
        assert.throws(() => huey.enqueue(send.s('a').with({ key: 'k' }).then(send.s('b'))), /not the steps of a pipeline/);
      } finally {
        await huey.flush();
        await huey.close();
      }
    });

    it('debounces: a call while the keyed one waits in the schedule replaces its arguments and eta', async () => {
      const { huey, send } = app(make());
      try {
        const first = send.schedule({ args: ['draft 1'], delay: 60, key: 'autosave', debounce: true });
        await first.enqueued;
        const second = send.schedule({ args: ['draft 2'], delay: 0.2, key: 'autosave', debounce: true });
        await second.enqueued;
        assert.equal(second.id, first.id, 'one task, one id');
        const scheduled = await huey.scheduled();
        assert.equal(scheduled.length, 1);
        assert.deepEqual(scheduled[0]!.args, ['draft 2']);
        assert.ok(scheduled[0]!.eta! < Date.now() + 1000, 'the new eta');
        // Once it is due and in the queue it cannot be replaced: a call joins it.
        while ((await huey.storage.enqueueDue(Date.now())).moved === 0) await new Promise((resolve) => setTimeout(resolve, 20));
        const third = send.schedule({ args: ['draft 3'], delay: 60, key: 'autosave', debounce: true });
        await third.enqueued;
        assert.equal(third.id, first.id);
        assert.equal(await huey.scheduledCount(), 0);
        assert.equal(await huey.pendingCount(), 1);
        await drain(new Worker(huey, 'w3'));
        assert.equal(await first.get(), 'draft 2');
      } finally {
        await huey.flush();
        await huey.close();
      }
    });

    it('lets a key go after its keyTtl, and takes over a key value that is not one of ours', async () => {
      const { huey, send } = app(make());
      try {
        const first = send.schedule({ args: ['a'], delay: 0, key: 'ttl', keyTtl: 0.05 });
        await first.enqueued;
        await new Promise((resolve) => setTimeout(resolve, 80));
        const second = send.schedule({ args: ['b'], delay: 0, key: 'ttl' });
        await second.enqueued;
        assert.notEqual(second.id, first.id, 'the lapsed key was taken by the new call');
        // Garbage at the key (written by hand) is taken over, not joined.
        await huey.storage.putData(dedupeKey('junk'), 'not json at all');
        const third = send.schedule({ args: ['c'], delay: 0, key: 'junk' });
        await third.enqueued;
        assert.equal(JSON.parse((await huey.storage.peekData(dedupeKey('junk')))!).id, third.id);
        assert.equal(await huey.pendingCount(), 3);
      } finally {
        await huey.flush();
        await huey.close();
      }
    });
  });
}

describe('deduplication under concurrent producers on Redis', () => {
  it('enqueues one task for twenty producers calling at once with one key', async () => {
    const producers = Array.from({ length: 20 }, () => app(new RedisStorage('dedupe-race', { url: testRedis().url })));
    try {
      const results = producers.map(({ sync }) => sync(5));
      await Promise.all(results.map((result) => result.enqueued));
      assert.equal(new Set(results.map((result) => result.id)).size, 1);
      assert.equal(await producers[0]!.huey.pendingCount(), 1);
    } finally {
      await producers[0]!.huey.flush();
      for (const { huey } of producers) await huey.close();
    }
  });

  it('dead-letters a message whose dedupe field has the wrong shape', async () => {
    const { huey } = app(new RedisStorage(fresh(), { url: testRedis().url }));
    try {
      await huey.storage.enqueue(JSON.stringify({ id: 'x1', name: 'send', args: ['a'], retries: 0, retryDelay: 0, retryBackoff: 1, priority: 0, eta: null, expires: null, dedupe: { key: 42 } }));
      await drain(new Worker(huey, 'w4'));
      const [letter] = await huey.storage.deadLetters();
      assert.match(letter!.reason, /field "dedupe.key" must be a string of 1 to 512 characters, not 42/);
    } finally {
      await huey.flush();
      await huey.close();
    }
  });
});

describe('deduplication through the consumer CLI', () => {
  for (const kind of ['redis', 'sqlite'] as const) {
    it(`runs a burst of keyed calls once per key on ${kind}, then takes new calls`, async () => {
      const env = kind === 'redis' ? { REDIS_URL: testRedis().url } : { HUEY_SQLITE_FILE: join(dir, 'cli.db') };
      // The producer is this process, with the consumer's module and environment.
      Object.assign(process.env, env);
      const { huey, syncUser } = await import(`./fixtures/dedupe.js?${kind}`);
      for (const name of Object.keys(env)) delete process.env[name];
      const calls = [42, 42, 42, 7, 42, 7].map((user) => syncUser(user));
      await Promise.all(calls.map((call: { enqueued: Promise<unknown> }) => call.enqueued));
      assert.equal(await huey.pendingCount(), 2);
      const consumer = startConsumer(['test/fixtures/dedupe.huey', '-w', '2'], env);
      try {
        const counts = await Promise.all(calls.map((call: { get: (o: object) => Promise<number> }) => call.get({ blocking: true, timeout: 20, preserve: true })));
        assert.deepEqual(counts, [1, 1, 1, 1, 1, 1], 'one run per key');
        const later = syncUser(42);
        assert.equal(await later.get({ blocking: true, timeout: 20 }), 2, 'the key was let go: a new run');
        assert.equal((await later.status())?.state, 'complete');
      } finally {
        consumer.child.kill('SIGTERM');
        await consumer.exited();
        await huey.flush();
        await huey.close();
      }
    });
  }
});
