import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT } from './support/processes.js';

// Every TypeScript snippet of the README, type-checked as a user's app would
// compile it: strict, against the built package (dist/, through its exports),
// not against src/. A snippet is a fragment, so the names it uses without
// defining them (a `huey`, an `add` task, a `userId`) are declared once below,
// with the types the README's prose gives them. `{ ... }` stands for a body
// the reader fills in; a line marked `// compile error` must not compile.

/** What the snippets use without defining it. */
const GLOBALS = `import type * as H from 'huey-ts';
import type { DateTime as LuxonDateTime } from 'luxon';

declare global {
  // The classes and helpers the prose imports from 'huey-ts' and luxon.
  const RedisHuey: typeof H.RedisHuey;
  const SqliteHuey: typeof H.SqliteHuey;
  const MemoryHuey: typeof H.MemoryHuey;
  const PriorityRedisHuey: typeof H.PriorityRedisHuey;
  const CancelExecution: typeof H.CancelExecution;
  const DateTime: typeof LuxonDateTime;
  type TaskContext = H.TaskContext;
  type TaskError = H.TaskError;

  // The app the sections build on.
  const huey: H.RedisHuey;
  const add: H.TaskWrapper<[number, number], number>;
  const id: string;
  const url: string;
  const userId: number;
  const a: string;
  const b: string;
  const c: string;
  const sendReminder: H.TaskWrapper<[number], void>;
  const sendNewsletter: H.TaskWrapper<[number], void>;
  const fetchFeed: H.TaskWrapper<[string], string>;
  const download: H.TaskWrapper<[string], string>;
  const parse: H.TaskWrapper<[string], { items: number }>;
  const resize: H.TaskWrapper<[string], number>;
  const count: H.TaskWrapper<[string], number>;
  const total: H.TaskWrapper<[string, unknown[]], string>;
  const report: H.TaskWrapper<[], string>;
  const publish: H.TaskWrapper<[string], void>;
  const notifyFailure: H.TaskWrapper<[string, H.TaskError], void>;
  const inner: H.Chord<[number, number], string>;
  const hook: H.Hook;
  function alert(message: string, error?: unknown): void;
  function log(...values: unknown[]): void;
  function maintenance(): Promise<boolean>;
  const metrics: { observe(name: string, outcome: string): void };
  const db: { connect(): Promise<void>; close(): Promise<void> };
}
export {};
`;

/** A stand-in for @opentelemetry/api (not a dependency): the part of its API the tracing snippet uses. */
const OPENTELEMETRY = `declare module '@opentelemetry/api' {
  export interface Context {}
  export interface Span {
    end(): void;
    recordException(exception: Error): void;
  }
  export const context: { active(): Context };
  export const propagation: {
    inject(context: Context, carrier: Record<string, string>): void;
    extract(context: Context, carrier: Readonly<Record<string, string>>): Context;
  };
  export const trace: { getTracer(name: string): { startSpan(name: string, options?: object, context?: Context): Span } };
}
`;

interface Snippet {
  /** The README line of the snippet's first line of code. */
  line: number;
  code: string;
}

function snippets(readme: string): Snippet[] {
  const found: Snippet[] = [];
  const lines = readme.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== '```ts') continue;
    const start = i + 1;
    let end = start;
    while (lines[end] !== '```') end++;
    found.push({ line: start + 1, code: lines.slice(start, end).join('\n') });
    i = end;
  }
  return found;
}

/** The snippet as a module: elided bodies filled in, lines meant not to compile marked as expected errors. */
function asModule(code: string): string {
  const body = code
    .replace(/\{ \.\.\. \}/g, "{ throw new Error('elided'); }")
    .split('\n')
    .flatMap((line) => (/\/\/ compile error\s*$/.test(line) ? ['// @ts-expect-error the README says this line does not compile', line] : [line]))
    .join('\n');
  // One line per line of the README, so an error's line number is the README's.
  return `${body}\nexport {};\n`;
}

let dir: string;
let found: Snippet[];
let errors: string;

before(async () => {
  found = snippets(readFileSync(join(ROOT, 'README.md'), 'utf8'));
  dir = mkdtempSync(join(tmpdir(), 'huey-readme-'));
  // The app's node_modules: the package itself (resolved through its exports to dist/) and what its snippets import.
  mkdirSync(join(dir, 'node_modules/@types'), { recursive: true });
  symlinkSync(ROOT, join(dir, 'node_modules/huey-ts'));
  for (const name of ['luxon', 'reflect-metadata', 'pg', '@types/luxon', '@types/node', '@types/pg']) symlinkSync(join(ROOT, 'node_modules', name), join(dir, 'node_modules', name));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        skipLibCheck: false,
        noEmit: true,
        experimentalDecorators: true,
        emitDecoratorMetadata: true,
        types: ['node'],
      },
      include: ['*.ts'],
    }),
  );
  writeFileSync(join(dir, 'globals.d.ts'), GLOBALS);
  writeFileSync(join(dir, 'opentelemetry.d.ts'), OPENTELEMETRY);
  // The example's main.ts re-exports these.
  writeFileSync(join(dir, 'config.ts'), "import { SqliteHuey } from 'huey-ts';\nexport const huey = new SqliteHuey('my-app');\n");
  writeFileSync(join(dir, 'tasks.ts'), 'export {};\n');
  found.forEach((snippet, i) => writeFileSync(join(dir, `snippet-${String(i).padStart(2, '0')}-line-${snippet.line}.ts`), asModule(snippet.code)));
  errors = await new Promise<string>((resolve) => {
    execFile(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', dir, '--pretty', 'false'], { cwd: dir }, (_error, stdout, stderr) => resolve(`${stdout}${stderr}`));
  });
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('the README', () => {
  it('has TypeScript snippets to check', () => {
    assert.ok(found.length >= 20, `found ${found.length} snippets`);
  });

  it('compiles every TypeScript snippet against the built package, strict, with skipLibCheck off', () => {
    // tsc names each file snippet-NN-line-L.ts: L + the error's line - 1 is the README's line.
    const located = errors.replace(/snippet-\d+-line-(\d+)\.ts\((\d+),(\d+)\)/g, (_, start: string, row: string, column: string) => `README.md:${Number(start) + Number(row) - 1}:${column}`);
    assert.equal(located.trim(), '', `README snippets that do not compile:\n${located}`);
  });
});
