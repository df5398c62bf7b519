import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { killAll, runScript, startConsumer } from './support/processes.js';

// The quickstart: examples/simple on the embedded SQLite default, no Redis involved.

const dir = mkdtempSync(join(tmpdir(), 'huey-example-'));
after(async () => {
  await killAll();
  rmSync(dir, { recursive: true, force: true });
});
const env = (file: string) => ({ REDIS_URL: '', HUEY_SQLITE_FILE: join(dir, file) });

const expectResults = (output: string) => {
  assert.match(output, /add\(1, 2\) = 3/);
  assert.match(output, /countBeans\(100\) = "Counted 100 beans"/);
  assert.match(output, /slowAdd\(2, 3, 1\) = 5/);
  assert.match(output, /flaky\('demo'\) = "demo-\d+ worked on try 3"/);
};

describe('examples/simple on SQLite', () => {
  it('runs end to end with the demo script (npm run example)', async () => {
    const demo = await runScript('examples/simple/demo.ts', env('demo.db'));
    assert.equal(demo.code, 0, demo.output);
    assert.match(demo.output, /storage: sqlite, blocking dequeue/);
    expectResults(demo.output);
    assert.match(demo.output, /consumer stopped/);
  });

  it('shares one file between a producer and process workers', async () => {
    const consumer = startConsumer(['examples/simple/main.huey', '-w', '2', '-k', 'process'], env('process.db'));
    await consumer.waitFor(/consumer running with/);
    const producer = await runScript('examples/simple/producer.ts', env('process.db'));
    assert.equal(producer.code, 0, producer.output);
    expectResults(producer.output);
    consumer.child.kill('SIGTERM');
    assert.equal(await consumer.exited(), 0, consumer.output);
  });
});
