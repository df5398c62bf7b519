import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CONSUMER_BIN = fileURLToPath(new URL('../../dist/cli/huey-consumer.js', import.meta.url));

const running = new Set<Spawned>();

/**
 * Kill every child a test file started and has not seen exit: call it from
 * `after()`, so a failed test cannot leave a consumer keeping the file alive.
 */
export async function killAll(): Promise<void> {
  await Promise.all(
    [...running].map(async (spawned) => {
      spawned.child.kill('SIGKILL');
      await spawned.exited();
    }),
  );
}

/** A child process whose output is collected, with a way to wait for a line. */
export class Spawned {
  readonly child: ChildProcess;
  output = '';
  private listeners: Array<() => void> = [];

  /** With `ownGroup`, the child leads a process group of its own, as a command started in a terminal does. */
  constructor(command: string, args: string[], env: NodeJS.ProcessEnv = {}, ownGroup = false, cwd = ROOT) {
    this.child = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: ownGroup });
    const collect = (chunk: Buffer) => {
      this.output += chunk.toString();
      for (const listener of this.listeners) listener();
    };
    this.child.stdout!.on('data', collect);
    this.child.stderr!.on('data', collect);
    running.add(this);
    this.child.once('exit', () => running.delete(this));
  }

  /** Resolve with the first match of `pattern` in the output, waiting up to `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs = 15_000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const match = this.output.match(pattern);
        if (match) {
          done();
          resolve(match);
        } else if (this.child.exitCode !== null) {
          done();
          reject(new Error(`process exited before ${pattern} appeared:\n${this.output}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${pattern} did not appear within ${timeoutMs}ms:\n${this.output}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.listeners = this.listeners.filter((l) => l !== check);
        this.child.off('exit', check);
      };
      this.listeners.push(check);
      this.child.on('exit', check);
      check();
    });
  }

  /** Wait for the exit and give its code (null when killed by a signal). */
  async exited(timeoutMs = 30_000): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const [code] = (await once(this.child, 'exit')) as [number | null];
    clearTimeout(timer);
    return code;
  }
}

export function startConsumer(args: string[], env: NodeJS.ProcessEnv = {}): Spawned {
  return new Spawned(process.execPath, [CONSUMER_BIN, ...args], env);
}

/** Run a TypeScript script to its end; resolves with its output and exit code. */
export async function runScript(file: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; output: string }> {
  const script = new Spawned(process.execPath, ['--import', 'tsx', file], env);
  const code = await script.exited(60_000);
  return { code, output: script.output };
}
