import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { RedisHuey, RedisStorage, SqliteHuey, SqliteStorage, type Huey, type Storage } from '../src/index.js';
import { Worker } from '../src/consumer/worker.js';
import { freePort, startRedis, type TestRedis } from './support/redis-server.js';
import { killAll, ROOT, Spawned } from './support/processes.js';

// A producer is a short script: it enqueues, maybe reads a result, and ends.
// Nothing it started may be lost at its end, and nothing may keep it from ending.

let redis: TestRedis;
let dir: string;

before(async () => {
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), 'huey-producer-'));
});

after(async () => {
  await killAll();
  await redis.close();
  rmSync(dir, { recursive: true, force: true });
});

const SRC = pathToFileURL(join(ROOT, 'src/index.ts')).href;

/** Run a producer script (its body after the imports) in a process of its own, to its exit. */
async function runProducer(body: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; output: string }> {
  const file = join(dir, `producer-${randomUUID()}.mts`);
  writeFileSync(file, `import { RedisHuey } from ${JSON.stringify(SRC)};\n${body}\n`);
  const script = new Spawned(process.execPath, ['--import', 'tsx', file], { REDIS_URL: redis.url, ...env });
  // The deadline only turns a process that never exits into a failure (killed: code null).
  const code = await script.exited(30_000);
  return { code, output: script.output };
}

/** A fresh Huey on each storage, with a task that a test can call. */
const storages = {
  redis: (name: string) => new RedisHuey(name, { url: redis.url }),
  sqlite: (name: string) => new SqliteHuey(name, { filename: join(dir, `${name}.db`) }),
};

function reopen(huey: Huey): Storage {
  return huey.storage instanceof RedisStorage ? new RedisStorage(huey.name, { url: redis.url }) : new SqliteStorage(huey.name, { filename: (huey.storage as SqliteStorage).filename });
}

describe('close()', () => {
  for (const [kind, make] of Object.entries(storages)) {
    it(`waits for the enqueues that the call form started (${kind})`, async () => {
      const huey = make(`close-${randomUUID()}`);
      const slow = huey.task()(function slow(ms: number) {
        return ms;
      });
      const results = [slow(2000), slow(2000), slow(2000), slow(2000)];
      await huey.close();
      // Every write was done before the storage closed.
      await Promise.all(results.map((result) => result.enqueued));
      const storage = reopen(huey);
      try {
        assert.equal(await storage.queueSize(), 4);
      } finally {
        await storage.close();
      }
    });
  }

  it('waits for a map() of many calls, in flight as one write', async () => {
    const huey = storages.redis(`close-map-${randomUUID()}`);
    const add = huey.task()(function add(a: number, b: number) {
      return a + b;
    });
    const group = add.map([
      [1, 2],
      [3, 4],
    ]);
    await huey.close();
    await group.enqueued;
    const storage = reopen(huey);
    try {
      assert.equal(await storage.queueSize(), 2);
    } finally {
      await storage.close();
    }
  });
});

describe('a producer script on Redis', () => {
  it('reads a result and exits by itself, without close()', async () => {
    const name = `exits-${randomUUID()}`;
    const huey = new RedisHuey(name, { url: redis.url });
    huey.task()(function add(a: number, b: number) {
      return a + b;
    });
    const worker = new Worker(huey, 'producer-test-worker', { blockingTimeout: 0.2 });
    const running = worker.run();
    try {
      const { code, output } = await runProducer(`
        const huey = new RedisHuey(${JSON.stringify(name)}, { url: process.env.REDIS_URL });
        const add = huey.task()(function add(a: number, b: number) { return a + b; });
        console.log('result', await add(1, 2).get({ blocking: true, timeout: 20 }));
        console.log('pending', await huey.pendingCount());
      `);
      assert.equal(code, 0, output);
      assert.match(output, /result 3\npending 0/);
    } finally {
      worker.stop();
      await running;
      await huey.close();
    }
  });

  it('that calls a task 100 times without awaiting and ends has enqueued all 100', async () => {
    const name = `unawaited-${randomUUID()}`;
    const { code, output } = await runProducer(`
      const huey = new RedisHuey(${JSON.stringify(name)}, { url: process.env.REDIS_URL });
      const add = huey.task()(function add(a: number, b: number) { return a + b; });
      for (let i = 0; i < 100; i++) add(i, i);
    `);
    assert.equal(code, 0, output);
    const storage = new RedisStorage(name, { url: redis.url });
    try {
      assert.equal(await storage.queueSize(), 100);
    } finally {
      await storage.close();
    }
  });

  it('whose background enqueue fails logs it and ends normally, not with an unhandled rejection', async () => {
    const nowhere = `redis://127.0.0.1:${await freePort()}`;
    const { code, output } = await runProducer(
      `
      const huey = new RedisHuey('nowhere', { url: process.env.REDIS_URL, logger: console });
      const add = huey.task()(function add(a: number, b: number) { return a + b; });
      add(1, 2);
      add.map([[1, 2]]);
    `,
      { REDIS_URL: nowhere },
    );
    assert.equal(code, 0, output);
    assert.match(output, /enqueue of add \S+ failed: StorageError: cannot connect to Redis/);
    assert.match(output, /enqueue of 1 task\(s\) failed: StorageError: cannot connect to Redis/);
  });
});
