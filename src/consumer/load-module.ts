import { existsSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Huey } from '../huey.js';

/** The user's `MODULE.EXPORT`, found on disk. */
export interface HueyLocation {
  /** As the user wrote it: `main.huey`, `examples.simple.main.huey`, `examples/simple/main.huey`. */
  readonly spec: string;
  readonly file: string;
  readonly exportName: string;
}

/** The module or its export could not be loaded; the message is one line for the terminal. */
export class ModuleLoadError extends Error {
  override name = 'ModuleLoadError';
}

const EXTENSIONS = ['.ts', '.mts', '.js', '.mjs', '.cjs', '.cts'];

function findFile(base: string): string | undefined {
  for (const candidate of [base, ...EXTENSIONS.map((ext) => base + ext), ...EXTENSIONS.map((ext) => `${base}/index${ext}`)]) {
    if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
  }
  return undefined;
}

/**
 * Turn `MODULE.EXPORT` into a file and an export name. The module part may
 * use dots or slashes as separators and may name its extension; it is read
 * relative to `cwd`.
 */
export function locateHuey(spec: string, cwd = process.cwd()): HueyLocation {
  const dot = spec.lastIndexOf('.');
  if (dot <= 0 || dot === spec.length - 1 || spec.slice(dot).includes('/')) {
    throw new ModuleLoadError(`"${spec}" is not MODULE.EXPORT (for example main.huey or examples/simple/main.huey)`);
  }
  const modulePart = spec.slice(0, dot);
  const exportName = spec.slice(dot + 1);
  const root = (p: string) => (isAbsolute(p) ? p : resolve(cwd, p));
  // Try the path as written first (it may contain dots of its own), then with dots as folders.
  const file = findFile(root(modulePart)) ?? findFile(root(modulePart.replaceAll('.', '/')));
  if (!file) {
    throw new ModuleLoadError(`cannot load "${spec}": no module "${modulePart}" under ${cwd} (tried ${EXTENSIONS.join(', ')})`);
  }
  return { spec, file, exportName };
}

function isTypeScript(file: string): boolean {
  return /\.[cm]?ts$/.test(file);
}

let typeScriptLoader: Promise<unknown> | undefined;

/**
 * Node 20 cannot import .ts at all, and later Nodes strip types but reject
 * decorators, so a .ts module goes through tsx's loader: registered once,
 * unless this process was already started with it (`node --import tsx`).
 */
async function ensureTypeScriptLoader(): Promise<void> {
  const started = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].join(' ');
  if (/(^|[\s=])tsx(\/esm)?(\s|$)/.test(started)) return;
  typeScriptLoader ??= import('tsx/esm/api').then((tsx) => tsx.register());
  await typeScriptLoader;
}

function looksLikeHuey(value: unknown): value is Huey {
  // Duck-typed so that a second copy of the package in node_modules still works.
  const huey = value as Huey | undefined;
  return typeof huey === 'object' && huey !== null && typeof huey.execute === 'function' && typeof huey.task === 'function' && 'storage' in huey;
}

/** Import the user's module and return its Huey export, or throw a one-line `ModuleLoadError`. */
export async function loadHuey(location: HueyLocation): Promise<Huey> {
  const url = pathToFileURL(location.file).href;
  let namespace: Record<string, unknown>;
  try {
    if (isTypeScript(location.file)) await ensureTypeScriptLoader();
    namespace = (await import(url)) as Record<string, unknown>;
  } catch (error) {
    const cause = error instanceof Error ? `${error.name}: ${error.message.split('\n')[0]}` : String(error);
    throw new ModuleLoadError(`cannot load "${location.spec}": module ${location.file} failed to import: ${cause}`);
  }
  const value = namespace[location.exportName];
  if (value === undefined) {
    const names = Object.keys(namespace).join(', ') || 'none';
    throw new ModuleLoadError(`cannot load "${location.spec}": module ${location.file} has no export "${location.exportName}" (exports: ${names})`);
  }
  if (!looksLikeHuey(value)) {
    throw new ModuleLoadError(`cannot load "${location.spec}": export "${location.exportName}" of ${location.file} is not a Huey instance`);
  }
  return value;
}
