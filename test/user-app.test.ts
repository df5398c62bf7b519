import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { killAll, ROOT, Spawned } from './support/processes.js';
import { startRedis, type TestRedis } from './support/redis-server.js';

// huey-ts as a user gets it: `npm pack`, a fresh app that installs the tarball
// with npm, compiles its tasks with its own tsc (strict, skipLibCheck false,
// decorators), and runs them with the installed huey-consumer on SQLite and
// on Redis. npm install runs once, in before(): it builds better-sqlite3.

const rootPackage = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

const work = mkdtempSync(join(tmpdir(), 'huey-user-app-'));
const app = join(work, 'app');
let tarball = '';
let packedFiles: string[] = [];
let install = { output: '', seconds: 0 };
let compile = { code: 0 as number | null, output: '', seconds: 0 };
let redis: TestRedis | undefined;

/**
 * The environment of a user's shell: none of the variables npm sets for the
 * script running this test (npm test), and no `--import tsx` passed down, so
 * the consumer loads a .ts module the way it does for a user.
 */
function userEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const key of Object.keys(process.env)) {
    if (key.startsWith('npm_') || key === 'INIT_CWD' || key === 'NODE_OPTIONS') env[key] = undefined;
  }
  return { ...env, ...extra };
}

function run(command: string, args: string[], cwd: string, timeoutMs = 120_000): Promise<{ code: number | null; output: string }> {
  const env = Object.fromEntries(Object.entries({ ...process.env, ...userEnv() }).filter(([, value]) => value !== undefined));
  return new Promise((done) => {
    execFile(command, args, { cwd, env, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      done({ code, output: `${stdout}${stderr}` });
    });
  });
}

const APP_FILES: Record<string, string> = {
  'tsconfig.json': JSON.stringify(
    {
      compilerOptions: {
        target: 'ES2022',
        module: 'nodenext',
        moduleResolution: 'nodenext',
        strict: true,
        skipLibCheck: false,
        experimentalDecorators: true,
        emitDecoratorMetadata: true,
        outDir: 'dist',
        rootDir: '.',
      },
      include: ['*.ts'],
    },
    null,
    2,
  ),
  'main.ts': `import 'reflect-metadata';
import { RedisHuey, SqliteHuey, type Huey } from 'huey-ts';

const name = 'user-app';
export const huey: Huey = process.env.REDIS_URL
  ? new RedisHuey(name, { url: process.env.REDIS_URL })
  : new SqliteHuey(name, { filename: process.env.HUEY_SQLITE_FILE ?? 'huey.db' });

export const add = huey.task()(function add(a: number, b: number): number {
  return a + b;
});

export const fail = huey.task()(function fail(message: string): never {
  throw new Error(message);
});

export class Greeter {
  @huey.task()
  static async greet(name: string): Promise<string> {
    return \`hello \${name}\`;
  }
}
`,
  // Compiled for its types only. The second @ts-expect-error holds only while luxon's
  // types install with huey-ts: without them DateTime is any, and so is eta.
  'checks.ts': `import type { Result } from 'huey-ts';
import { add, Greeter, huey } from './main.js';

export function typeChecks(): Array<Result<unknown>> {
  const sum: Result<number> = add(1, 2);
  const greeting: Result<string> = huey.taskOf(Greeter.greet)('you');
  // @ts-expect-error a string is not a number
  add('1', 2);
  // @ts-expect-error eta is a Date or a luxon DateTime
  add.schedule({ args: [1, 2], eta: 42 });
  return [sum, greeting];
}
`,
  'run-consumer.ts': `import { ConsoleLog, Consumer, Scheduler, Worker, type ConsumerOptions, type SchedulerOptions, type WorkerOptions } from 'huey-ts/consumer';
import { startDashboard, type Dashboard, type DashboardOptions } from 'huey-ts/dashboard';
import { huey } from './main.js';

export type Api = [typeof Scheduler, typeof Worker, SchedulerOptions, WorkerOptions, typeof startDashboard, DashboardOptions, Dashboard];

huey.logger = new ConsoleLog({ source: 'from-code' });
const options: ConsumerOptions = { workers: 2, workerType: 'async', maxDelay: 0.5 };
process.exitCode = await new Consumer(huey, options).run();
`,
  // A CommonJS app in TypeScript: tsc turns the imports into require() calls.
  'cjs/package.json': JSON.stringify({ type: 'commonjs' }),
  'cjs/tsconfig.json': JSON.stringify({
    compilerOptions: { target: 'ES2022', module: 'nodenext', strict: true, skipLibCheck: false, outDir: 'out', rootDir: '.' },
    include: ['app.ts'],
  }),
  'cjs/app.ts': `import { SqliteHuey } from 'huey-ts';
import { Consumer } from 'huey-ts/consumer';
import { startDashboard } from 'huey-ts/dashboard';

const huey = new SqliteHuey('cjs-app', { filename: ':memory:' });
console.log([typeof Consumer, typeof startDashboard, huey.name].join(' '));
`,
  // Exits by itself once the Huey is closed.
  'producer.ts': `import { TaskError } from 'huey-ts';
import { add, fail, Greeter, huey } from './main.js';

const sum = add(2, 3);
const greeting = huey.taskOf(Greeter.greet)('node');
const failure = fail('boom from the user app');
const report: Record<string, unknown> = {};
report.add = await sum.get({ blocking: true, timeout: 30 });
report.greet = await greeting.get({ blocking: true, timeout: 30 });
try {
  await failure.get({ blocking: true, timeout: 30 });
  report.fail = 'no error';
} catch (error) {
  report.fail = error instanceof TaskError ? error.remote : String(error);
}
try {
  add.schedule({ args: [1, 2], eta: 42 as any });
  report.eta = 'accepted';
} catch (error) {
  report.eta = \`\${(error as Error).name}: \${(error as Error).message}\`;
}
console.log('REPORT ' + JSON.stringify(report));
await huey.close();
`,
};

before(
  async () => {
    assert.ok(existsSync(join(ROOT, 'dist/consumer/index.js')), 'dist/ is not built: run npm run build first');

    // dist/ as built by `npm run build` (npm test builds before the tests); --ignore-scripts so that packing
    // does not rebuild it under the feet of other test files.
    const pack = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], ROOT);
    assert.equal(pack.code, 0, pack.output);
    const packed = JSON.parse(pack.output.slice(pack.output.indexOf('['))) as Array<{ filename: string; files: Array<{ path: string }> }>;
    tarball = join(work, packed[0]!.filename);
    packedFiles = packed[0]!.files.map((file) => file.path);

    mkdirSync(app);
    const appPackage = {
      name: 'huey-user-app',
      version: '1.0.0',
      private: true,
      type: 'module',
      dependencies: { 'huey-ts': `file:${tarball}`, 'reflect-metadata': rootPackage.dependencies['reflect-metadata'] },
      devDependencies: { typescript: rootPackage.devDependencies.typescript, '@types/node': rootPackage.devDependencies['@types/node'] },
      // What the README asks for: better-sqlite3 builds its native addon; esbuild's postinstall only
      // checks its binary, which comes from its platform package anyway; the tarball's prepare has
      // nothing to do (npm writes this key with `npm install-scripts deny huey-ts`).
      allowScripts: { 'better-sqlite3': true, esbuild: false, [`file:${tarball}`]: false },
    };
    writeFileSync(join(app, 'package.json'), JSON.stringify(appPackage, null, 2));
    mkdirSync(join(app, 'cjs'));
    for (const [file, text] of Object.entries(APP_FILES)) writeFileSync(join(app, file), text);

    let started = performance.now();
    const installed = await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline'], app, 9 * 60_000);
    install = { output: installed.output, seconds: (performance.now() - started) / 1000 };
    assert.equal(installed.code, 0, installed.output);

    started = performance.now();
    const compiled = await run(join(app, 'node_modules/.bin/tsc'), ['-p', '.'], app);
    compile = { ...compiled, seconds: (performance.now() - started) / 1000 };

    redis = await startRedis();
  },
  { timeout: 10 * 60_000 },
);

afterEach(killAll);

after(async () => {
  await killAll();
  await redis?.close();
  rmSync(work, { recursive: true, force: true });
});

interface Report {
  add: number;
  greet: string;
  fail: { name: string; message: string; stack?: string } | string;
  eta: string;
}

/** The files a stack trace names (absolute paths and file: URLs). */
function stackFiles(stack: string): string[] {
  const files: string[] = [];
  for (const line of stack.split('\n').slice(1)) {
    const match = /(?:\(|at )((?:file:\/\/)?\/[^():]+):\d+:\d+\)?\s*$/.exec(line);
    if (match) files.push(match[1]!.startsWith('file://') ? fileURLToPath(match[1]!) : match[1]!);
  }
  return files;
}

function consumer(args: string[], env: NodeJS.ProcessEnv): Spawned {
  return new Spawned(join(app, 'node_modules/.bin/huey-consumer'), args, userEnv(env), false, app);
}

async function produce(env: NodeJS.ProcessEnv): Promise<Report> {
  const producer = new Spawned(process.execPath, ['dist/producer.js'], userEnv(env), false, app);
  const code = await producer.exited(60_000);
  assert.equal(code, 0, producer.output);
  const line = producer.output.split('\n').find((l) => l.startsWith('REPORT '));
  assert.ok(line, producer.output);
  const report = JSON.parse(line.slice('REPORT '.length)) as Report;
  assert.equal(report.add, 5);
  assert.equal(report.greet, 'hello node');
  assert.ok(typeof report.fail === 'object', `the failure came back as ${JSON.stringify(report.fail)}`);
  assert.equal(report.fail.message, 'boom from the user app');
  assert.match(report.eta, /^ConfigurationError: .*\beta\b/);
  return report;
}

/** Every file a task error's stack names exists, huey-ts's own among them; returns them. */
function assertStackFilesExist(report: Report): string[] {
  assert.ok(typeof report.fail === 'object' && report.fail.stack, JSON.stringify(report.fail));
  const files = stackFiles(report.fail.stack);
  assert.ok(
    files.some((file) => file.startsWith(join(app, 'node_modules/huey-ts/'))),
    `no frame in huey-ts:\n${report.fail.stack}`,
  );
  for (const file of files) assert.ok(existsSync(file), `the stack names ${file}, which does not exist:\n${report.fail.stack}`);
  return files;
}

async function stop(spawned: Spawned): Promise<void> {
  spawned.child.kill('SIGTERM');
  assert.equal(await spawned.exited(), 0, spawned.output);
}

describe('a user app installing the npm pack tarball', () => {
  it('gets dist with its types and maps, the sources the maps name, and no tests', (t) => {
    t.diagnostic(`npm install: ${install.seconds.toFixed(1)}s; tsc: ${compile.seconds.toFixed(1)}s`);
    for (const file of [
      'package.json',
      'README.md',
      'dist/index.js',
      'dist/index.d.ts',
      'dist/index.js.map',
      'dist/consumer/index.js',
      'dist/consumer/index.d.ts',
      'dist/dashboard/server.d.ts',
      'dist/cli/huey-consumer.js',
      'dist/huey.d.ts.map',
      'src/huey.ts',
      'src/consumer/index.ts',
    ]) {
      assert.ok(packedFiles.includes(file), `the tarball lacks ${file}`);
    }
    assert.ok(packedFiles.some((file) => /^dist\/storage\/redis\/scripts\/.+\.lua$/.test(file)), 'the tarball lacks the Lua scripts');
    assert.deepEqual(
      packedFiles.filter((file) => /^(test|bench|examples|docs|node_modules)\//.test(file)),
      [],
    );

    // Every source a map names was installed: stack traces and go-to-definition land on real files.
    const installed = join(app, 'node_modules/huey-ts');
    const maps = (readdirSync(join(installed, 'dist'), { recursive: true }) as string[]).filter((file) => file.endsWith('.map'));
    assert.ok(maps.length > 20);
    for (const map of maps) {
      const path = join(installed, 'dist', map);
      const { sources, sourceRoot = '' } = JSON.parse(readFileSync(path, 'utf8')) as { sources: string[]; sourceRoot?: string };
      for (const source of sources) {
        const file = resolve(dirname(path), sourceRoot, source);
        assert.ok(existsSync(file), `${map} names ${source}, not installed (${file})`);
      }
    }
  });

  it('installs with no install script left unreviewed', async () => {
    // The README's allowScripts entries cover every install script of the dependency tree.
    assert.doesNotMatch(install.output, /install-scripts/, install.output);
    const pending = await run('npm', ['install-scripts', 'ls'], app);
    assert.equal(pending.code, 0, pending.output);
    assert.match(pending.output, /No packages with unreviewed install scripts/);
    // better-sqlite3's native addon was built: its script ran.
    const sqlite = await run(process.execPath, ['-e', "new (require('better-sqlite3'))(':memory:').prepare('select 1').get()"], app);
    assert.equal(sqlite.code, 0, sqlite.output);
  });

  it("compiles with the app's own tsc: strict, skipLibCheck false, decorators, huey-ts/consumer and huey-ts/dashboard", () => {
    const version = (JSON.parse(readFileSync(join(app, 'node_modules/typescript/package.json'), 'utf8')) as { version: string }).version;
    const ours = (JSON.parse(readFileSync(join(ROOT, 'node_modules/typescript/package.json'), 'utf8')) as { version: string }).version;
    assert.equal(version.split('.')[0], ours.split('.')[0], `the app got TypeScript ${version}, huey-ts builds with ${ours}`);
    assert.equal(compile.code, 0, compile.output);
    assert.equal(compile.output.trim(), '');
    for (const file of ['main', 'checks', 'run-consumer', 'producer']) assert.ok(existsSync(join(app, `dist/${file}.js`)));
  });

  it('loads with import() from CommonJS everywhere, and with require() (also a CommonJS TypeScript app) where Node has require(esm)', async (t) => {
    const show = "console.log([typeof a.SqliteHuey, typeof b.Consumer, typeof c.startDashboard].join(' '))";
    const viaImport = await run(
      process.execPath,
      ['-e', `Promise.all(['huey-ts', 'huey-ts/consumer', 'huey-ts/dashboard'].map((e) => import(e))).then(([a, b, c]) => { ${show} })`],
      app,
    );
    assert.equal(viaImport.code, 0, viaImport.output);
    assert.equal(viaImport.output.trim(), 'function function function');
    if (!process.features.require_module) {
      t.diagnostic(`Node ${process.version} has no require(esm): import() only`);
      return;
    }
    const viaRequire = await run(process.execPath, ['-e', `const a = require('huey-ts'), b = require('huey-ts/consumer'), c = require('huey-ts/dashboard'); ${show}`], app);
    assert.equal(viaRequire.code, 0, viaRequire.output);
    assert.equal(viaRequire.output.trim(), 'function function function');
    const version = await run(process.execPath, ['-p', "require('huey-ts/package.json').version"], app);
    assert.equal(version.output.trim(), rootPackage.version);

    const compiled = await run(join(app, 'node_modules/.bin/tsc'), ['-p', 'cjs'], app);
    assert.equal(compiled.code, 0, compiled.output);
    assert.match(readFileSync(join(app, 'cjs/out/app.js'), 'utf8'), /require\("huey-ts\/consumer"\)/);
    const ran = await run(process.execPath, ['cjs/out/app.js'], app);
    assert.equal(ran.code, 0, ran.output);
    assert.equal(ran.output.trim(), 'function function cjs-app');
  });

  it('runs the compiled tasks with huey-consumer on SQLite', async (t) => {
    const env = { REDIS_URL: '', HUEY_SQLITE_FILE: join(work, 'tasks.db') };
    const started = performance.now();
    const running = consumer(['dist/main.huey', '--workers', '2'], env);
    await running.waitFor(/consumer running with 2 async worker/, 30_000);
    assert.match(running.output, /storage: sqlite/);
    assert.match(running.output, /\+ Greeter\.greet/);
    const report = await produce(env);
    // Plain JavaScript: no source maps applied, the frames are in dist/.
    const files = assertStackFilesExist(report);
    assert.ok(files.includes(join(app, 'dist/main.js')), JSON.stringify(report.fail));
    await stop(running);
    assert.match(running.output, /consumer stopped/);
    t.diagnostic(`consumer start to stop: ${((performance.now() - started) / 1000).toFixed(1)}s`);
  });

  it('runs main.ts through tsx on Redis, with esbuild\'s install script denied', async () => {
    const env = { REDIS_URL: redis!.url };
    const running = consumer(['main.huey', '--workers', '2'], env);
    await running.waitFor(/consumer running with 2 async worker/, 30_000);
    assert.match(running.output, /storage: redis/);
    const report = await produce(env);
    // tsx turns source maps on: huey-ts's frames are mapped to its shipped src/*.ts.
    const files = assertStackFilesExist(report);
    assert.ok(files.includes(join(app, 'main.ts')), JSON.stringify(report.fail));
    assert.ok(
      files.some((file) => file.startsWith(join(app, 'node_modules/huey-ts/src/'))),
      `no frame mapped to huey-ts's sources: ${JSON.stringify(report.fail)}`,
    );
    await stop(running);
  });

  it('runs a Consumer from code, imported from huey-ts/consumer', async () => {
    const env = { REDIS_URL: '', HUEY_SQLITE_FILE: join(work, 'from-code.db') };
    const running = new Spawned(process.execPath, ['dist/run-consumer.js'], userEnv(env), false, app);
    await running.waitFor(/from-code: consumer running with 2 async worker/, 30_000);
    await produce(env);
    await stop(running);
  });
});
