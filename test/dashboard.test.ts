import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { createClient } from '@redis/client';
import type { Snapshot } from '../src/dashboard/snapshot.js';
import { killAll, runScript, Spawned, startConsumer } from './support/processes.js';
import { startRedis, type TestRedis } from './support/redis-server.js';

// The dashboard in real headless Chromium, served by a real consumer (--dashboard), on Redis;
// and the same consumer option on the embedded SQLite storage.

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

let redis: TestRedis;
let browser: Browser;
let fixture: typeof import('./fixtures/faults.js');

before(async () => {
  redis = await startRedis();
  process.env.REDIS_URL = redis.url;
  fixture = await import('./fixtures/faults.js');
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  await killAll();
  await fixture?.huey.close();
  await redis.close();
});

async function consumerWithDashboard(args: string[], env: NodeJS.ProcessEnv): Promise<{ consumer: Spawned; url: string }> {
  const consumer = startConsumer([...args, '--dashboard', '0'], env);
  const [, url] = (await consumer.waitFor(/dashboard at (http:\/\/\S+)/)) as RegExpMatchArray;
  await consumer.waitFor(/consumer running with/);
  return { consumer, url: url! };
}

/** Poll `condition` every 100 ms until it holds; fail after `ms`. */
async function pollUntil(condition: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`waited ${ms} ms for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function snapshotOf(url: string): Promise<Snapshot> {
  return (await (await fetch(new URL('/api/snapshot', url))).json()) as Snapshot;
}

/** The events table row of task `id`, once it shows `status`. */
function eventRow(page: Page, id: string, status: string) {
  return page.locator('[data-testid="events"] tr', { hasText: id }).filter({ has: page.locator(`[data-status="${status}"]`) });
}

describe('dashboard in Chromium', () => {
  it('shows a task run, a failure with its stack, and revokes a scheduled task from the page', async () => {
    const { consumer, url } = await consumerWithDashboard(['test/fixtures/faults.huey', '-w', '2'], { REDIS_URL: redis.url });
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    await page.goto(url);
    await page.locator('#title', { hasText: 'fixture-faults (redis)' }).waitFor();

    const doubled = fixture.double(21);
    await eventRow(page, doubled.id, 'complete').waitFor();
    assert.equal(await doubled.get({ blocking: true, timeout: 5 }), 42);

    const failing = fixture.fails('on purpose');
    const failedRow = eventRow(page, failing.id, 'failed');
    await failedRow.waitFor();
    const stack = await failedRow.locator('[data-testid="stack"]').textContent();
    assert.match(stack ?? '', /^Error: boom: on purpose\n\s+at fails /);

    // A failure can be run again from the page, under the same id.
    const retried = new Promise<void>((resolve) => page.once('dialog', (dialog) => void dialog.accept().then(() => resolve())));
    await failedRow.locator('button[data-action="retry"]').click();
    await retried;
    await page.locator('[data-testid="notice"]', { hasText: `retried failed task fails ${failing.id}` }).waitFor();
    await page.locator('[data-testid="events"] tr', { hasText: failing.id }).nth(1).waitFor();

    // The async consumer is one worker with two run slots, and it reports its heartbeat.
    await page.locator('[data-testid="workers"] tr', { hasText: '.async' }).filter({ hasText: 'ago' }).waitFor();
    assert.equal(await page.locator('[data-testid="worker-count"]').textContent(), '1');

    const later = fixture.double.schedule({ args: [5], delay: 3600 });
    await later.enqueued;
    const revoke = page.locator(`[data-testid="scheduled"] button[data-action="revoke"][data-target="${later.id}"]`);
    await revoke.waitFor();
    const question = new Promise<string>((resolve) => page.once('dialog', (dialog) => void dialog.accept().then(() => resolve(dialog.message()))));
    await revoke.click();
    assert.match(await question, new RegExp(`Revoke double ${later.id}\\?`));
    await page.locator('[data-testid="notice"]', { hasText: `revoked task ${later.id}` }).waitFor();
    await page.locator('[data-testid="revoked"] button[data-action="restore"]', { hasText: 'Restore' }).waitFor();
    assert.equal(await fixture.huey.isRevokedId(later.id), true);
    assert.match(consumer.output, new RegExp(`dashboard: revoked task ${later.id}`));
    // When its time comes, the revoked task is skipped, not run (here it comes at once).
    const [scheduled] = await fixture.huey.scheduled();
    await fixture.huey.storage.flushSchedule();
    await fixture.huey.storage.enqueue(fixture.huey.serializeMessage({ ...scheduled!, eta: null }));
    await eventRow(page, later.id, 'revoked').waitFor();

    // Paused from the page, the workers leave a new task waiting until resumed.
    const paused = new Promise<void>((resolve) => page.once('dialog', (dialog) => void dialog.accept().then(() => resolve())));
    await page.locator('button[data-action="pause"]').click();
    await paused;
    await page.locator('[data-testid="pause-control"]', { hasText: 'PAUSED' }).waitFor();
    const heartbeat = async () => (await snapshotOf(url)).workers[0]!.at;
    const pausedAt = Date.now();
    // Once the worker has written its status (and so read the flag) after the pause, it starts nothing new.
    await pollUntil(async () => (await heartbeat()) > pausedAt, 'a status written after the pause');
    const waiting = fixture.double(7);
    await waiting.enqueued;
    const enqueuedAt = Date.now();
    await pollUntil(async () => (await heartbeat()) > enqueuedAt + 1000, 'two more statuses');
    assert.deepEqual((await fixture.huey.pending()).map((m) => m.id), [waiting.id], 'a paused worker left it in the queue');
    const resumed = new Promise<void>((resolve) => page.once('dialog', (dialog) => void dialog.accept().then(() => resolve())));
    await page.locator('button[data-action="resume"]').click();
    await resumed;
    assert.equal(await waiting.get({ blocking: true, timeout: 10 }), 14);

    if (process.env.DASHBOARD_SCREENSHOT) await page.screenshot({ path: process.env.DASHBOARD_SCREENSHOT, fullPage: true });

    // Workers write their counts once a second: wait for the last run to be in them.
    let metrics = '';
    await pollUntil(async () => /huey_task_duration_seconds_count\{task="double"\} 3$/m.test((metrics = await (await fetch(new URL('/metrics', url))).text())), 'the metrics of every run');
    assert.match(metrics, /^huey_tasks_total\{task="double",outcome="complete"\} 2$/m);
    assert.match(metrics, /^huey_tasks_total\{task="fails",outcome="failed"\} 2$/m);
    assert.match(metrics, /^huey_task_duration_seconds_count\{task="double"\} 3$/m);
    assert.match(metrics, /^huey_workers 1$/m);
    // Producers add their enqueue counts once a second: the test's own, and the consumer's retry.
    await pollUntil(async () => /^huey_tasks_enqueued_total\{task="fails"\} 2$/m.test((metrics = await (await fetch(new URL('/metrics', url))).text())), 'the enqueue counts');
    assert.match(metrics, /^huey_tasks_enqueued_total\{task="double"\} 3$/m);

    await page.close();
    consumer.child.kill('SIGTERM');
    assert.equal(await consumer.exited(), 0, consumer.output);
  });

  it('refuses a request without the token when one is set, a page from another origin, and a non-JSON action', async () => {
    const open = await consumerWithDashboard(['test/fixtures/faults.huey'], { REDIS_URL: redis.url });
    const port = new URL(open.url).port;
    // Without a token, only requests addressed to the loopback by name are answered.
    const rebound = await new Promise<number>((resolve, reject) =>
      request({ host: '127.0.0.1', port, path: '/api/snapshot', headers: { host: `evil.example:${port}` } }, (response) => resolve(response.statusCode!)).on('error', reject).end(),
    );
    assert.equal(rebound, 401);
    assert.equal((await fetch(new URL('/api/snapshot', open.url))).status, 200);
    open.consumer.child.kill('SIGTERM');
    assert.equal(await open.consumer.exited(), 0, open.consumer.output);

    const { consumer, url } = await consumerWithDashboard(['test/fixtures/faults.huey', '--dashboard-token', 's3cret'], { REDIS_URL: redis.url });
    assert.doesNotMatch(url, /token/, 'the logged address leaves the token out');
    assert.equal((await fetch(new URL('/api/snapshot', url))).status, 401);
    assert.equal((await fetch(new URL('/api/snapshot?token=s3cret', url))).status, 200);
    const action = (contentType: string) =>
      fetch(new URL('/api/action?token=s3cret', url), { method: 'POST', headers: { 'content-type': contentType }, body: JSON.stringify({ action: 'pause' }) });
    assert.equal((await action('text/plain')).status, 415, 'a cross-site simple request is refused');
    const raw = (body: string) => fetch(new URL('/api/action?token=s3cret', url), { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const malformed = await raw('{"action": ');
    assert.equal(malformed.status, 400);
    assert.match(((await malformed.json()) as { error: string }).error, /not a JSON object/);
    assert.equal((await raw('x'.repeat(70 * 1024))).status, 413);
    assert.equal((await fetch(new URL('/api/snapshot?token=s3cr%C3%A9t', url))).status, 401, 'a token of another byte length is refused, not a crash');
    assert.equal((await action('application/json')).status, 200);
    assert.equal(await fixture.huey.isPaused(), true);
    await fixture.huey.resume();
    // A refused action is logged with the request's address: the token's value is left out of it.
    const refused = await fetch(new URL('/api/action?token=s3cret', url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ action: 'run-periodic', target: 'double' }) });
    assert.equal(refused.status, 400);
    await consumer.waitFor(/dashboard: POST \/api\/action\?token=<redacted> failed: double is not a periodic task/);
    consumer.child.kill('SIGTERM');
    assert.equal(await consumer.exited(), 0, consumer.output);
    assert.ok(!consumer.output.includes('s3cret'), `no log line has the token:\n${consumer.output}`);
  });
});

describe('dashboard and task records', () => {
  it('finds a task by id and follows its progress and log live, lists failed tasks as text, and requeues one', async () => {
    const records = await import('./fixtures/records.js');
    const { consumer, url } = await consumerWithDashboard(['test/fixtures/records.huey', '-w', '2'], { REDIS_URL: redis.url });
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    try {
      await page.goto(url);
      await page.locator('#title', { hasText: 'fixture-records (redis)' }).waitFor();
      // 8 pages of 400 ms: running for over 3 s, several of the page's once-a-second updates even on a loaded machine.
      const report = records.report(8);
      await report.enqueued;
      await page.fill('[data-testid="find"]', report.id);
      await page.press('[data-testid="find"]', 'Enter');
      // Read again with every snapshot: running with its progress, then complete with its whole log.
      await page.locator('[data-testid="task-state"]', { hasText: 'running' }).waitFor();
      await page.locator('[data-testid="task-progress"]', { hasText: '"page":' }).waitFor();
      await page.locator('[data-testid="task-state"]', { hasText: 'complete' }).waitFor({ timeout: 15_000 });
      await page.locator('[data-testid="task-log"]', { hasText: '<b>rendered page 8</b>' }).waitFor();
      assert.equal(await page.locator('[data-testid="task-log"] b').count(), 0, 'log lines are text, not markup');

      await page.fill('[data-testid="find"]', 'no-such-id');
      await page.click('[data-testid="find-button"]');
      await page.locator('[data-testid="task-missing"]', { hasText: 'no record of task no-such-id' }).waitFor();
      const missing = await fetch(new URL('/api/status?id=', url));
      assert.equal(missing.status, 400);

      const failing = records.explode();
      await assert.rejects(failing.get({ blocking: true, timeout: 10 }));
      const row = page.locator('[data-testid="failed"] tr', { hasText: failing.id });
      await row.waitFor();
      assert.match((await row.textContent()) ?? '', /Error: <img src=x onerror="window.pwned = 1">/);
      assert.equal(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned), undefined, 'the markup never ran');
      await pollUntil(async () => /^huey_queue_failed_tasks\{queue="default"\} 1$/m.test(await (await fetch(new URL('/metrics', url))).text()), 'the failed count in /metrics');

      const before = (await failing.status())!.ended!.getTime();
      const asked = new Promise<string>((resolve) => page.once('dialog', (dialog) => void dialog.accept().then(() => resolve(dialog.message()))));
      await row.locator('button[data-action="requeue"]').click();
      assert.match(await asked, new RegExp(`Run explode ${failing.id} again\\?`));
      await page.locator('[data-testid="notice"]', { hasText: `requeued failed task ${failing.id}` }).waitFor();
      // It runs again, and fails again: a newer end.
      await pollUntil(async () => ((await failing.status())?.ended?.getTime() ?? 0) > before && (await failing.status())?.state === 'failed', 'the second run');
    } finally {
      await page.close();
      consumer.child.kill('SIGTERM');
      await consumer.exited();
      await records.huey.flush();
      await records.huey.close();
    }
  });
});

describe('dashboard page safety', () => {
  /** `huey dashboard` on the fixture's queue: a dashboard with no workers, so what waits stays put. */
  async function dashboardProcess(): Promise<{ server: Spawned; url: string }> {
    const server = new Spawned(process.execPath, ['dist/cli/huey.js', 'dashboard', 'test/fixtures/faults.huey', '--port', '0'], { REDIS_URL: redis.url });
    const [, url] = (await server.waitFor(/dashboard for "fixture-faults" at (http:\/\/\S+)/)) as RegExpMatchArray;
    return { server, url: url! };
  }

  it('shows its first snapshot at once, corrupt items as text, under its CSP, and is not framed by another site', async () => {
    const client = createClient({ url: redis.url });
    await client.connect();
    // Straight into Redis: a waiting item that is not a task message, and tries to be markup.
    const hostile = '</script><script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">';
    await client.lPush('huey.{fixture-faults}.queue', hostile);
    const { server, url } = await dashboardProcess();
    const page = await browser.newPage();
    const framing = await browser.newPage();
    const other = createServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/html' });
      response.end(`<!doctype html><iframe src="${url}" onload="window.frameLoaded = true"></iframe>`);
    });
    try {
      // Every Content-Security-Policy violation the page sees, from the page itself and from the console.
      const violations: string[] = [];
      await page.addInitScript(() => document.addEventListener('securitypolicyviolation', (e) => console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`)));
      page.on('console', (message) => /CSP violation|Content Security Policy/i.test(message.text()) && violations.push(message.text()));
      page.on('pageerror', (error) => violations.push(`page error: ${error.message}`));

      // No event stream at all: the page shows the snapshot it came with.
      await page.route('**/events*', (route) => route.abort());
      await page.goto(url);
      await page.locator('#title', { hasText: 'fixture-faults (redis)' }).waitFor();
      const corrupt = page.locator('[data-testid="pending-tasks"] [data-testid="corrupt"]');
      await corrupt.waitFor();
      assert.match((await corrupt.textContent()) ?? '', /^corrupt: payload is not valid JSON: .*<\/script><script>window\.pwned = 1<\/script><img src=x/);
      assert.equal(await page.locator('main img, main script').count(), 0, 'the markup stayed text');
      assert.equal(await page.evaluate(() => (window as { pwned?: number }).pwned), undefined);

      // With the stream, it follows the queue live, its script and style allowed by their hashes.
      await page.unroute('**/events*');
      await page.reload();
      const later = fixture.double.schedule({ args: [3], delay: 3600 });
      await later.enqueued;
      await page.locator('[data-testid="scheduled"] code', { hasText: later.id }).waitFor();
      assert.equal((await page.request.get(new URL('/favicon.ico', url).href)).status(), 204);
      assert.deepEqual(violations, []);

      // Another site's page frames the dashboard: the browser refuses to show it there.
      other.listen(0, '127.0.0.1');
      await new Promise((resolve) => other.once('listening', resolve));
      const otherUrl = `http://127.0.0.1:${(other.address() as AddressInfo).port}/`;
      const said: string[] = [];
      framing.on('console', (message) => said.push(message.text()));
      await framing.goto(otherUrl);
      await framing.waitForFunction(() => (window as { frameLoaded?: boolean }).frameLoaded === true);
      const frame = framing.frames().find((f) => f !== framing.mainFrame())!;
      assert.notEqual(frame.url(), url, `the frame shows ${frame.url()}`);
      assert.equal(await frame.locator('#title').count(), 0, 'no dashboard inside the frame');
      await pollUntil(async () => said.some((text) => /frame-ancestors 'none'/.test(text)), 'the browser to say why');
    } finally {
      other.close();
      await page.close();
      await framing.close();
      server.child.kill('SIGTERM');
      await server.exited();
      await fixture.huey.storage.flushQueue();
      await fixture.huey.storage.flushSchedule();
      await client.quit();
    }
  });
});

describe('dashboard on the embedded storage', () => {
  it('reports the worker and the runs of a SQLite consumer', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'huey-dash-')), 'huey.db');
    const env = { REDIS_URL: '', HUEY_SQLITE_FILE: file };
    const { consumer, url } = await consumerWithDashboard(['examples/simple/main.huey', '-n'], env);
    const page = await browser.newPage();
    await page.goto(url);
    await page.locator('#title', { hasText: 'simple-example (sqlite)' }).waitFor();
    await page.locator('[data-testid="workers"] tr', { hasText: '.async' }).waitFor();
    const producer = await runScript('examples/simple/producer.ts', env);
    assert.equal(producer.code, 0, producer.output);
    await page.locator('[data-testid="events"] tr', { hasText: 'add' }).filter({ has: page.locator('[data-status="complete"]') }).first().waitFor();
    // A periodic task can be run now from the page (the consumer runs with -n: no periodic runs of its own).
    const asked = new Promise<void>((resolve) => page.once('dialog', (dialog) => void dialog.accept().then(() => resolve())));
    await page.locator('[data-testid="periodic"] button[data-action="run-periodic"][data-target="heartbeat"]').click();
    await asked;
    await page.locator('[data-testid="notice"]', { hasText: 'enqueued periodic task heartbeat now' }).waitFor();
    await page.locator('[data-testid="events"] tr', { hasText: 'heartbeat' }).filter({ has: page.locator('[data-status="complete"]') }).waitFor();
    await page.close();
    consumer.child.kill('SIGTERM');
    assert.equal(await consumer.exited(), 0, consumer.output);
  });
});
