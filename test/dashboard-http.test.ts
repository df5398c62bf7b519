import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { get, type IncomingMessage } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { createClient } from '@redis/client';
import { startDashboard } from '../src/dashboard/server.js';
import type { Snapshot } from '../src/dashboard/snapshot.js';
import { MemoryHuey, RedisHuey, type Message } from '../src/index.js';
import { killAll, Spawned } from './support/processes.js';
import { startRedis, type TestRedis } from './support/redis-server.js';

// The dashboard's server in this process, over plain HTTP: what it sends, to whom, and how much.

let redis: TestRedis;

before(async () => {
  redis = await startRedis();
});

after(async () => {
  await killAll();
  await redis.close();
});

/** Poll `condition` every 20 ms until it holds; fail after `ms`. */
async function pollUntil(condition: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`waited ${ms} ms for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** An open /events request: its status, and the events it has received so far. */
interface Listener {
  status: number;
  response: IncomingMessage;
  /** Whole events received. */
  frames: number;
  /** The first event's data, parsed. */
  first?: Snapshot;
  /** When the last event's snapshot was taken. */
  lastAt?: number;
  close(): void;
}

function listen(url: string): Promise<Listener> {
  return new Promise((resolve, reject) => {
    const request = get(new URL('/events', url), { agent: false }, (response) => {
      const listener: Listener = { status: response.statusCode!, response, frames: 0, close: () => request.destroy() };
      let partial = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        // An event ends with a blank line; JSON in it has no raw line break.
        const parts = (partial + chunk).split('\n\n');
        partial = parts.pop()!;
        for (const part of parts) {
          listener.frames += 1;
          listener.first ??= JSON.parse(part.replace(/^data: /, '')) as Snapshot;
          listener.lastAt = Number(/"at":(\d+)/.exec(part.slice(0, 300))?.[1]);
        }
      });
      resolve(listener);
    });
    request.on('error', reject);
  });
}

const message = (id: string, args: unknown[], eta: number | null = null): Message => ({
  id,
  name: 'work',
  args,
  retries: 0,
  retryDelay: 0,
  retryBackoff: 1,
  priority: 0,
  eta,
  expires: null,
});

describe('dashboard responses', () => {
  it('frame no one: every response says DENY and frame-ancestors none, under a CSP with no inline script but its own', async () => {
    const huey = new MemoryHuey('headers');
    const dashboard = await startDashboard(huey, { port: 0 });
    const tokened = await startDashboard(huey, { port: 0, token: 't0ken' });
    try {
      const events = await listen(dashboard.url);
      const responses: Array<[string, number, Headers | IncomingMessage['headers']]> = [['/events', events.status, events.response.headers]];
      for (const path of ['/', '/api/snapshot', '/metrics', '/nowhere', '/favicon.ico']) {
        const response = await fetch(new URL(path, dashboard.url));
        responses.push([path, response.status, response.headers]);
      }
      const refused = await fetch(new URL('/api/snapshot', tokened.url));
      responses.push(['/api/snapshot without the token', refused.status, refused.headers]);
      events.close();

      assert.deepEqual(
        responses.map(([path, status]) => `${path} ${status}`),
        ['/events 200', '/ 200', '/api/snapshot 200', '/metrics 200', '/nowhere 404', '/favicon.ico 204', '/api/snapshot without the token 401'],
      );
      for (const [path, , headers] of responses) {
        const header = (name: string) => (headers instanceof Headers ? headers.get(name) : (headers[name] as string | undefined)) ?? '';
        assert.equal(header('x-frame-options'), 'DENY', path);
        const policy = header('content-security-policy');
        assert.match(policy, /(^|; )frame-ancestors 'none'(;|$)/, path);
        assert.match(policy, /(^|; )default-src 'self'(;|$)/, path);
        assert.match(policy, /(^|; )script-src 'sha256-[A-Za-z0-9+/]+=*'(;|$)/, `${path}: the page's script by its hash, and nothing else`);
        assert.doesNotMatch(policy, /unsafe-inline|unsafe-eval/, path);
      }
    } finally {
      await dashboard.close();
      await tokened.close();
      await huey.close();
    }
  });

  it('serves the page with the latest snapshot inside it, safe in its script block', async () => {
    const huey = new MemoryHuey('page');
    const hostile = '</script><script>alert(1)</script>';
    const echo = huey.task()(function echo(text: string) {
      return text;
    });
    await echo(hostile).enqueued;
    const dashboard = await startDashboard(huey, { port: 0 });
    try {
      const html = await (await fetch(dashboard.url)).text();
      const block = /<script type="application\/json" id="initial-snapshot">([^]*?)<\/script>/.exec(html);
      assert.ok(block, 'the page carries a snapshot');
      const [row] = (JSON.parse(block[1]!) as Snapshot).pendingTasks as Array<{ args: unknown[] }>;
      assert.deepEqual(row?.args, [hostile], 'the task argument arrives whole, as data');
      assert.equal(html.match(/<script/g)!.length, 2, 'no text of the queue opens a script of its own');
    } finally {
      await dashboard.close();
      await huey.close();
    }
  });

  it('keeps the token out of its address and out of the log of a failed action', async () => {
    const lines: string[] = [];
    const huey = new MemoryHuey('redacted');
    huey.logger = { debug: (m) => lines.push(m), info: (m) => lines.push(m), warn: (m) => lines.push(m), error: (m) => lines.push(m) };
    const dashboard = await startDashboard(huey, { port: 0, token: 'very-secret-token' });
    try {
      assert.doesNotMatch(dashboard.url, /very-secret-token/);
      const refused = await fetch(new URL('/api/action?token=very-secret-token', dashboard.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ action: 'run-periodic', target: 'noSuchTask' }),
      });
      assert.equal(refused.status, 400);
      assert.ok(lines.some((line) => /POST \/api\/action\?token=<redacted> failed: noSuchTask is not a periodic task/.test(line)), lines.join('\n'));
      assert.ok(lines.every((line) => !line.includes('very-secret-token')), lines.join('\n'));
    } finally {
      await dashboard.close();
      await huey.close();
    }
  });
});

describe('corrupt messages', () => {
  it('shows a corrupt pending or scheduled item as such and goes on, in /api/snapshot and /metrics', async () => {
    const huey = new RedisHuey('dash-corrupt', { url: redis.url });
    const client = createClient({ url: redis.url });
    await client.connect();
    const dashboard = await startDashboard(huey, { port: 0 });
    try {
      await huey.storage.enqueue(huey.serializeMessage(message('good-1', [1])));
      // Straight into Redis, as a script or another program might: not a task message.
      await client.lPush('huey.{dash-corrupt}.queue', 'garbage \u001b[31m<b>not json</b>');
      await huey.storage.enqueue(huey.serializeMessage(message('good-2', [2])));
      await client.zAdd('huey.{dash-corrupt}.schedule', { score: Date.now() + 60_000, value: JSON.stringify({ hello: 'x'.repeat(500) }) });

      const response = await fetch(new URL('/api/snapshot', dashboard.url));
      assert.equal(response.status, 200);
      const snapshot = (await response.json()) as Snapshot;
      assert.equal(snapshot.pending, 3);
      assert.deepEqual(
        snapshot.pendingTasks.map((row) => ('corrupt' in row ? 'corrupt' : row.id)),
        ['good-1', 'corrupt', 'good-2'],
      );
      const [, garbage] = snapshot.pendingTasks as Array<{ corrupt: true; reason: string; preview: string }>;
      assert.match(garbage!.reason, /not valid JSON/);
      assert.doesNotMatch(garbage!.reason, /\u001b/, 'the parser quotes the input: escaped too');
      assert.equal(garbage!.preview, 'garbage \\u001b[31m<b>not json</b>', 'control characters escaped, the rest left as text');
      const [scheduled] = snapshot.scheduled as Array<{ corrupt: true; reason: string; preview: string }>;
      assert.equal(scheduled!.corrupt, true);
      assert.match(scheduled!.reason, /not a (valid )?task message/);
      assert.ok(scheduled!.preview.length <= 121 && scheduled!.preview.endsWith('…'), scheduled!.preview);

      const metrics = await fetch(new URL('/metrics', dashboard.url));
      assert.equal(metrics.status, 200);
      assert.match(await metrics.text(), /^huey_queue_depth 3$/m);
    } finally {
      await dashboard.close();
      await client.quit();
      await huey.storage.flushQueue();
      await huey.storage.flushSchedule();
      await huey.close();
    }
  });
});

describe('the event stream', () => {
  it('builds one snapshot per beat for every page, and sends a new page its first alone', async (t) => {
    t.mock.timers.enable({ apis: ['setInterval'] });
    const huey = new MemoryHuey('shared');
    let builds = 0;
    const queueSize = huey.storage.queueSize.bind(huey.storage);
    // Every snapshot asks for the queue size once: count the snapshots built.
    huey.storage.queueSize = () => (builds++, queueSize());
    const dashboard = await startDashboard(huey, { port: 0, intervalMs: 60_000 });
    try {
      const a = await listen(dashboard.url);
      await pollUntil(() => a.frames === 1, 'the first page to get a snapshot');
      const b = await listen(dashboard.url);
      await pollUntil(() => b.frames === 1, 'the second page to get a snapshot');
      const c = await listen(dashboard.url);
      await pollUntil(() => c.frames === 1, 'the third page to get a snapshot');
      // Each page got one snapshot, built once for all three (they came within one beat).
      assert.deepEqual([a.frames, b.frames, c.frames, builds], [1, 1, 1, 1]);

      t.mock.timers.tick(60_000);
      await pollUntil(() => a.frames === 2 && b.frames === 2 && c.frames === 2, 'one more snapshot each');
      assert.equal(builds, 2);

      // With every page gone, the beat builds nothing.
      for (const listener of [a, b, c]) listener.close();
      await pollUntil(() => dashboard.clients === 0, 'the server to see the pages go');
      t.mock.timers.tick(5 * 60_000);
      assert.equal(builds, 2);
    } finally {
      await dashboard.close();
      await huey.close();
    }
  });

  it('refuses pages over its limit with 503, and takes one again when another leaves', async () => {
    const huey = new MemoryHuey('capped');
    const dashboard = await startDashboard(huey, { port: 0, maxClients: 2 });
    try {
      const [a, b] = [await listen(dashboard.url), await listen(dashboard.url)];
      const refused = await listen(dashboard.url);
      assert.deepEqual([a.status, b.status, refused.status], [200, 200, 503]);
      a.close();
      await pollUntil(() => dashboard.clients === 1, 'the server to see a page go');
      const again = await listen(dashboard.url);
      assert.equal(again.status, 200);
      for (const listener of [b, refused, again]) listener.close();
    } finally {
      await dashboard.close();
      await huey.close();
    }
  });

  it('skips a page that has not read its last snapshot, instead of queueing snapshots for it', async (t) => {
    t.mock.timers.enable({ apis: ['setInterval'] });
    const huey = new MemoryHuey('slow');
    // About 150 KB of snapshot: 50 pending tasks of 3 KB.
    for (let i = 0; i < 50; i++) await huey.storage.enqueue(huey.serializeMessage(message(`t${i}`, ['x'.repeat(3000)])));
    const dashboard = await startDashboard(huey, { port: 0, intervalMs: 60_000 });
    try {
      const slow = await listen(dashboard.url);
      slow.response.pause(); // reads nothing: the socket fills up
      const fast = await listen(dashboard.url);
      await pollUntil(() => fast.frames === 1, 'the first snapshot');
      const beat = async () => {
        const before = fast.frames;
        t.mock.timers.tick(60_000);
        await pollUntil(() => fast.frames === before + 1, `snapshot ${before + 1}`);
      };
      const beats = 200;
      for (let i = 0; i < beats; i++) await beat();
      // Now the slow page reads: what sat in its socket, then whatever the server held for it,
      // and then (beat on) the newest snapshot, once its socket has drained.
      slow.response.resume();
      await pollUntil(async () => (await beat(), slow.lastAt === fast.lastAt), 'the slow page to catch up');
      assert.ok(slow.frames < beats / 2, `the slow page was sent ${slow.frames} snapshots, the other ${fast.frames}`);
      slow.close();
      fast.close();
    } finally {
      await dashboard.close();
      await huey.close();
    }
  });

  it('cuts a snapshot of large tasks to its size bound, and says so', async () => {
    const huey = new MemoryHuey('large');
    for (let i = 0; i < 50; i++) await huey.storage.enqueue(huey.serializeMessage(message(`big${i}`, ['x'.repeat(20_000)])));
    for (let i = 0; i < 50; i++) await huey.storage.addToSchedule(huey.serializeMessage(message(`mid${i}`, ['y'.repeat(3000)], Date.now() + 60_000)), Date.now() + 60_000, 0);
    const dashboard = await startDashboard(huey, { port: 0, maxSnapshotBytes: 64 * 1024 });
    try {
      const text = await (await fetch(new URL('/api/snapshot', dashboard.url))).text();
      assert.ok(Buffer.byteLength(text) <= 64 * 1024, `${Buffer.byteLength(text)} bytes`);
      const snapshot = JSON.parse(text) as Snapshot;
      assert.deepEqual([snapshot.pending, snapshot.scheduledCount], [50, 50], 'counts stay exact');
      assert.deepEqual(snapshot.truncated?.sort(), ['pendingTasks', 'scheduled']);
      // The large arguments are cut to a preview; the list of medium ones is shortened.
      assert.equal(snapshot.pendingTasks.length, 50);
      assert.match(String((snapshot.pendingTasks[0] as { args: unknown }).args), /^\["x{100,}… \(\d+ characters, cut\)$/);
      assert.ok(snapshot.scheduled.length > 0 && snapshot.scheduled.length < 50, `${snapshot.scheduled.length} scheduled`);

      const listener = await listen(dashboard.url);
      await pollUntil(() => listener.frames >= 1, 'a snapshot');
      assert.deepEqual(listener.first?.truncated?.sort(), ['pendingTasks', 'scheduled']);
      listener.close();
    } finally {
      await dashboard.close();
      await huey.close();
    }
  });
});

describe('the dashboard under load', () => {
  it('serves 200 pages of a large queue in bounded memory, and refuses the 201st', async (t) => {
    // The queue of test/fixtures/faults.ts, which the dashboard process loads.
    const huey = new RedisHuey('fixture-faults', { url: redis.url });
    // About 1 MB of pending tasks and 100 KB of scheduled ones: the snapshot is cut to 256 KiB.
    for (let i = 0; i < 50; i++) await huey.storage.enqueue(huey.serializeMessage(message(`big${i}`, ['x'.repeat(20_000)])));
    for (let i = 0; i < 50; i++) await huey.storage.addToSchedule(huey.serializeMessage(message(`mid${i}`, ['y'.repeat(2000)], Date.now() + 600_000)), Date.now() + 600_000);
    const server = new Spawned(process.execPath, ['dist/cli/huey.js', 'dashboard', 'test/fixtures/faults.huey', '--port', '0', '--max-clients', '200'], { REDIS_URL: redis.url });
    const listeners: Listener[] = [];
    let sampler: NodeJS.Timeout | undefined;
    let grown: Error | undefined;
    try {
      const [, url] = (await server.waitFor(/dashboard for "fixture-faults" at (http:\/\/\S+)/)) as RegExpMatchArray;
      // The server's resident memory in MB (0 once it is gone).
      const rss = () => {
        try {
          return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${server.child.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
        } catch {
          return 0;
        }
      };
      assert.equal((await fetch(url!)).status, 200, 'the page, with a snapshot built');
      const idle = rss();
      let peak = idle;
      // A generous bound, watched all along: past it the server is stopped before it takes the machine down.
      const bound = idle + 300;
      sampler = setInterval(() => {
        peak = Math.max(peak, rss());
        if (peak > bound && !grown) {
          grown = new Error(`the dashboard grew to ${peak.toFixed(0)} MB of RSS, from ${idle.toFixed(0)} MB idle`);
          server.child.kill('SIGKILL');
        }
      }, 20);

      for (let i = 0; i < 200; i += 20) listeners.push(...(await Promise.all(Array.from({ length: 20 }, () => listen(url!)))));
      assert.deepEqual(new Set(listeners.map((listener) => listener.status)), new Set([200]));
      const refused = await listen(url!);
      assert.equal(refused.status, 503, 'the 201st page');
      refused.close();

      // Every page gets snapshots: its first, and then one a second.
      await pollUntil(() => listeners.every((listener) => listener.frames >= 3), 'three snapshots on every page', 60_000);
      for (const listener of listeners) {
        assert.equal(listener.first!.pending, 50);
        assert.deepEqual(listener.first!.truncated, ['pendingTasks']);
      }
      const kib = Buffer.byteLength(JSON.stringify(listeners[0]!.first)) / 1024;
      t.diagnostic(`dashboard RSS: ${idle.toFixed(0)} MB idle, at most ${peak.toFixed(0)} MB with 200 pages (snapshots of ${kib.toFixed(0)} KiB, cut from about 1.1 MB)`);
      assert.equal(grown, undefined);
    } catch (error) {
      throw grown ?? error; // a connection cut by the kill is not the news
    } finally {
      clearInterval(sampler);
      for (const listener of listeners) listener.close();
      server.child.kill('SIGTERM');
      await server.exited();
      await huey.storage.flushQueue();
      await huey.storage.flushSchedule();
      await huey.close();
    }
  });
});
