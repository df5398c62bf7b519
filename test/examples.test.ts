import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterEach, after, describe, it } from 'node:test';
import { ROOT, Spawned, killAll } from './support/processes.js';
import { freePort, startRedis } from './support/redis-server.js';

// examples/express (an Express app that enqueues tasks, with a consumer beside it)
// and examples/compose (the same on Redis under docker compose). Docker cannot run
// here, so the compose test runs what the compose file says each service runs:
// its command and environment, from the repository root (the image's /app), on a
// redis-server of our own started with the compose file's redis arguments.
// Needs dist/ (npm test builds it first).

const COMPOSE_FILE = join(ROOT, 'examples/compose/docker-compose.yml');
const DOCKERFILE = join(ROOT, 'examples/compose/Dockerfile');

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  command: string[];
  environment?: Record<string, string>;
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
  init?: boolean;
  stop_grace_period?: string;
}
interface Compose {
  services: Record<'redis' | 'app' | 'consumer', Service>;
}

/** The compose file is YAML in its JSON-like flow style, with whole-line comments: drop those and it is JSON. */
function readCompose(): Compose {
  const text = readFileSync(COMPOSE_FILE, 'utf8');
  assert.ok(!text.includes('$'), 'no "$" in the compose file: Compose would interpolate it');
  return JSON.parse(
    text
      .split('\n')
      .filter((line) => !/^\s*#/.test(line))
      .join('\n'),
  ) as Compose;
}

/** A compose command in exec form, run here: `node` is this Node. */
function run(command: string[], env: NodeJS.ProcessEnv): Spawned {
  const [program, ...args] = command;
  return new Spawned(program === 'node' ? process.execPath : program!, args, env);
}

const seconds = (duration: string): number => {
  const match = /^(\d+)(s|m)$/.exec(duration);
  assert.ok(match, `a duration like 45s or 2m: ${duration}`);
  return Number(match[1]) * (match[2] === 'm' ? 60 : 1);
};

interface Reply {
  status: number;
  body: any;
  headers: Headers;
}

async function request(base: string, method: string, path: string, body?: unknown): Promise<Reply> {
  const response = await fetch(base + path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json(), headers: response.headers };
}

/** GET `path` until it answers something other than 202 (pending), for up to 20 s. */
async function settled(base: string, path: string): Promise<Reply> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const reply = await request(base, 'GET', path);
    if (reply.status !== 202) return reply;
    assert.equal(reply.body.status, 'pending');
    if (Date.now() > deadline) assert.fail(`${path} still pending after 20 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Everything the app promises over HTTP, with a consumer running. */
async function driveTheApi(base: string): Promise<void> {
  const health = await request(base, 'GET', '/health');
  assert.equal(health.status, 200);
  assert.equal(health.body.status, 'ok');

  // A report: 202 with its id and Location, then 200 with the value, as often as asked.
  const queued = await request(base, 'POST', '/reports', { n: 3 });
  assert.equal(queued.status, 202, JSON.stringify(queued.body));
  assert.equal(queued.body.status, 'queued');
  assert.match(queued.body.id, /^[0-9a-f-]{36}$/);
  assert.equal(queued.headers.get('location'), `/reports/${queued.body.id}`);
  const done = await settled(base, `/reports/${queued.body.id}`);
  assert.equal(done.status, 200, JSON.stringify(done.body));
  assert.equal(done.body.status, 'done');
  assert.equal(done.body.report.rows, 3);
  assert.equal(done.body.report.total, 1 + 4 + 9);
  const again = await request(base, 'GET', `/reports/${queued.body.id}`);
  assert.deepEqual([again.status, again.body], [200, done.body]);

  // A task that fails: 500 with its error.
  const tooBig = await request(base, 'POST', '/reports', { n: 5000 });
  assert.equal(tooBig.status, 202);
  const failed = await settled(base, `/reports/${tooBig.body.id}`);
  assert.equal(failed.status, 500, JSON.stringify(failed.body));
  assert.deepEqual(failed.body, { id: tooBig.body.id, status: 'failed', error: 'a report of 5000 rows is over the limit of 1000' });

  // What the app refuses before enqueueing anything.
  assert.equal((await request(base, 'POST', '/reports', { n: 'three' })).status, 400);
  assert.equal((await request(base, 'POST', '/reports', { n: 0 })).status, 400);
  const notJson = await request(base, 'POST', '/reports', '{"n":');
  assert.equal(notJson.status, 400);
  assert.ok(notJson.body.error);
  assert.equal((await request(base, 'GET', '/reports/not-a-task-id')).status, 404);
}

/** SIGTERM both, as docker stop does, and expect a clean exit from each. */
async function stopBoth(app: Spawned, consumer: Spawned): Promise<void> {
  app.child.kill('SIGTERM');
  consumer.child.kill('SIGTERM');
  assert.equal(await app.exited(), 0, app.output);
  assert.equal(await consumer.exited(), 0, consumer.output);
  assert.match(app.output, /SIGTERM: closing the HTTP server\n[\s\S]*express example stopped/);
  assert.match(consumer.output, /consumer stopped/);
}

afterEach(killAll);

describe('examples/compose', () => {
  const compose = readCompose();
  const { redis, app, consumer } = compose.services;

  it('builds both services from one image of the repository, running the image command as the app', () => {
    for (const service of [app, consumer]) {
      assert.ok(service.build, 'built here');
      assert.equal(resolve(dirname(COMPOSE_FILE), service.build.context), resolve(ROOT), 'context: the repository root');
      assert.equal(resolve(ROOT, service.build.dockerfile), DOCKERFILE);
      assert.equal(service.image, app.image);
      assert.equal(service.init, true);
      assert.deepEqual(service.depends_on, { redis: { condition: 'service_healthy' } });
      assert.equal(service.environment?.REDIS_URL, 'redis://redis:6379');
    }
    // The Dockerfile puts the repository at /app and runs from there, as the tests do from ROOT.
    const dockerfile = readFileSync(DOCKERFILE, 'utf8');
    assert.match(dockerfile, /^WORKDIR \/app$/m);
    const cmd = /^CMD (\[.*\])$/m.exec(dockerfile);
    assert.ok(cmd);
    assert.deepEqual(JSON.parse(cmd[1]!), app.command);
    assert.ok(redis.healthcheck && app.healthcheck);
  });

  it('gives the consumer longer to stop than its grace period', () => {
    const flag = consumer.command.indexOf('--grace-period');
    const grace = flag === -1 ? 30 : Number(consumer.command[flag + 1]);
    assert.ok(consumer.stop_grace_period, 'stop_grace_period is set');
    assert.ok(seconds(consumer.stop_grace_period) > grace, `${consumer.stop_grace_period} > ${grace}s`);
  });

  it('runs the app and the consumer as the compose file says, on Redis', async () => {
    assert.equal(redis.command[0], 'redis-server');
    const server = await startRedis({ args: redis.command.slice(1) });
    try {
      // Redis's healthcheck, pointed at our server.
      const [cli, ...cliArgs] = redis.healthcheck!.test.slice(1);
      const ping = new Spawned(cli!, ['-p', String(server.port), ...cliArgs]);
      assert.equal(await ping.exited(), 0, ping.output);
      assert.match(ping.output, /PONG/);

      const port = await freePort();
      const appProcess = run(app.command, { ...app.environment, REDIS_URL: server.url, PORT: String(port) });
      const consumerProcess = run(consumer.command, { ...consumer.environment, REDIS_URL: server.url });
      await appProcess.waitFor(/listening on port \d+ \(storage: redis\)/);
      await consumerProcess.waitFor(/consumer running with/);
      assert.match(consumerProcess.output, /- workers: 4 async/);

      // The app's healthcheck, as docker runs it in the container (PORT from its environment).
      const health = run(app.healthcheck!.test.slice(1), { ...app.environment, PORT: String(port) });
      assert.equal(await health.exited(), 0, health.output);

      await driveTheApi(`http://127.0.0.1:${port}`);
      await stopBoth(appProcess, consumerProcess);
    } finally {
      await server.close();
    }
  });

  it("fails the app's healthcheck when the app is down", async () => {
    const port = await freePort();
    const health = run(app.healthcheck!.test.slice(1), { ...app.environment, PORT: String(port) });
    assert.equal(await health.exited(), 1, health.output);
  });
});

describe('examples/express on SQLite', () => {
  const dir = mkdtempSync(join(tmpdir(), 'huey-express-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('enqueues on POST, answers on GET, and stops cleanly on SIGTERM', async () => {
    const env = { REDIS_URL: '', HUEY_SQLITE_FILE: join(dir, 'huey.db') };
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const appProcess = new Spawned(process.execPath, ['--import', 'tsx', 'examples/express/server.ts'], { ...env, PORT: String(port) });
    await appProcess.waitFor(/listening on port \d+ \(storage: sqlite\)/);

    // Before any consumer runs, a report stays pending.
    const early = await request(base, 'POST', '/reports', { n: 2 });
    assert.equal(early.status, 202);
    const pending = await request(base, 'GET', `/reports/${early.body.id}`);
    assert.deepEqual([pending.status, pending.body], [202, { id: early.body.id, status: 'pending' }]);

    const consumerProcess = new Spawned(process.execPath, ['dist/cli/huey-consumer.js', 'examples/express/main.huey', '--workers', '2'], env);
    await consumerProcess.waitFor(/consumer running with/);
    assert.match(consumerProcess.output, /storage: sqlite/);
    const built = await settled(base, `/reports/${early.body.id}`);
    assert.equal(built.status, 200, JSON.stringify(built.body));
    assert.equal(built.body.report.total, 1 + 4);

    await driveTheApi(base);
    await stopBoth(appProcess, consumerProcess);
  });

  it('stops on SIGTERM while a client holds a keep-alive connection', async () => {
    const env = { REDIS_URL: '', HUEY_SQLITE_FILE: join(dir, 'idle.db'), PORT: String(await freePort()) };
    const appProcess = new Spawned(process.execPath, ['--import', 'tsx', 'examples/express/server.ts'], env);
    await appProcess.waitFor(/listening on port/);
    // fetch keeps its connection open for the next request: the server must not wait for it.
    assert.equal((await request(`http://127.0.0.1:${env.PORT}`, 'GET', '/health')).status, 200);
    appProcess.child.kill('SIGTERM');
    assert.equal(await appProcess.exited(), 0, appProcess.output);
    assert.match(appProcess.output, /express example stopped/);
  });
});
