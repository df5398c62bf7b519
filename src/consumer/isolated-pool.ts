import { fork, type ChildProcess } from 'node:child_process';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker as Thread } from 'node:worker_threads';
import type { Huey } from '../huey.js';
import type { LogLevel } from './log.js';
import type { WorkerPool } from './pool.js';
import type { WorkerOptions } from './worker.js';

/** What a thread or process worker is started with. */
export interface WorkerSetup {
  /** The user's MODULE.EXPORT and where to resolve it from. */
  spec: string;
  cwd: string;
  workerId: string;
  options: WorkerOptions;
  logLevel: LogLevel;
}

/** Messages from a worker to the consumer. */
export type WorkerReport =
  | { type: 'ready' }
  | { type: 'log'; level: LogLevel; message: string }
  | { type: 'failed'; error: string };

/** The consumer's one message to a worker. */
export type WorkerCommand = { type: 'stop' };

/** A thread or a child process, seen the same way. */
interface Child {
  send(command: WorkerCommand): void;
  onReport(listener: (report: WorkerReport) => void): void;
  /** Resolves when it has exited, with a description of how. */
  readonly exited: Promise<string>;
  kill(): void;
}

// The entry sits beside this file, as .ts when run from source and .js when built.
const entry = new URL(`./worker-entry${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

function startThread(setup: WorkerSetup): Child {
  const thread = new Thread(entry, { workerData: setup, name: setup.workerId });
  return {
    send: (command) => thread.postMessage(command),
    onReport: (listener) => thread.on('message', listener),
    exited: new Promise((resolve) => {
      thread.once('error', (error) => resolve(`crashed: ${error.message}`));
      thread.once('exit', (code) => resolve(`exited with code ${code}`));
    }),
    kill: () => void thread.terminate(),
  };
}

function startProcess(setup: WorkerSetup): Child {
  const child: ChildProcess = fork(fileURLToPath(entry), [], {
    env: { ...process.env, HUEY_WORKER_SETUP: JSON.stringify(setup) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return {
    send: (command) => {
      if (child.connected) child.send(command);
    },
    onReport: (listener) => child.on('message', listener as (message: unknown) => void),
    exited: new Promise((resolve) => {
      child.once('exit', (code, signal) => resolve(signal ? `was killed by ${signal}` : `exited with code ${code}`));
    }),
    kill: () => void child.kill('SIGKILL'),
  };
}

interface Slot {
  id: string;
  child: Child;
  stopping: boolean;
  dead: boolean;
}

/**
 * Workers in worker_threads or child processes. Each imports the user's
 * module itself, so its registry is filled there and the consumer's own
 * process never runs task code. Their log lines come back here.
 */
export class IsolatedPool implements WorkerPool {
  private slots: Slot[] = [];

  constructor(
    readonly type: 'thread' | 'process',
    private readonly huey: Huey,
    readonly workerIds: readonly string[],
    private readonly setup: Omit<WorkerSetup, 'workerId'>,
    private readonly log: (level: LogLevel, message: string, source: string) => void,
  ) {}

  async start(): Promise<void> {
    this.slots = await Promise.all(this.workerIds.map((id) => this.spawn(id)));
  }

  private spawn(id: string): Promise<Slot> {
    const setup = { ...this.setup, workerId: id };
    const child = this.type === 'thread' ? startThread(setup) : startProcess(setup);
    const slot: Slot = { id, child, stopping: false, dead: false };
    return new Promise((resolve, reject) => {
      child.onReport((report) => {
        if (report.type === 'log') this.log(report.level, report.message, id);
        else if (report.type === 'ready') resolve(slot);
        else if (report.type === 'failed') reject(new Error(`${id}: ${report.error}`));
      });
      void child.exited.then((how) => {
        slot.dead = true;
        reject(new Error(`${id} ${how} before it was ready`));
        if (!slot.stopping) this.huey.logger.error(`${this.type} worker ${id} ${how}`);
      });
    });
  }

  async stop(graceMs: number): Promise<string[]> {
    for (const slot of this.slots) {
      slot.stopping = true;
      slot.child.send({ type: 'stop' });
    }
    const interrupted: string[] = [];
    await Promise.all(
      this.slots.map(async (slot) => {
        let timer: NodeJS.Timeout | undefined;
        const graceOver = new Promise<'timeout'>((resolve) => (timer = setTimeout(resolve, graceMs, 'timeout')));
        const outcome = await Promise.race([slot.child.exited, graceOver]);
        clearTimeout(timer);
        if (outcome === 'timeout') {
          interrupted.push(slot.id);
          slot.child.kill();
          await slot.child.exited;
        }
      }),
    );
    this.slots = [];
    return interrupted;
  }

  async check(onDead: (workerId: string) => Promise<void>): Promise<string[]> {
    const replaced: string[] = [];
    for (const [i, slot] of this.slots.entries()) {
      if (!slot.dead || slot.stopping) continue;
      await onDead(slot.id);
      this.slots[i] = await this.spawn(slot.id);
      replaced.push(slot.id);
    }
    return replaced;
  }
}
