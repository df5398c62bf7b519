import { fork, type ChildProcess } from 'node:child_process';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker as Thread } from 'node:worker_threads';
import { TaskTimeout, WorkerDiedError } from '../errors.js';
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
  /** The consumer's lease in ms: a process worker whose consumer died renews its own while it finishes. */
  leaseMs: number;
  /** The consumer's grace period in ms: how long such a worker may take to finish. */
  graceMs: number;
}

/** Messages from a worker to the consumer. */
export type WorkerReport =
  | { type: 'ready' }
  /**
   * Runs under way. A run with a timeout is reported as it starts, for the
   * consumer's clock; the others only once they outlast a turn of the
   * worker's event loop, many in one message, so fast runs cost no IPC.
   */
  | { type: 'started'; runs: Array<{ taskId: string; timeout: number | null }> }
  /** Reported runs that have ended. */
  | { type: 'finished'; taskIds: string[] }
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
      // 'close', not 'exit': it comes once the IPC channel has delivered the worker's last reports.
      child.once('close', (code, signal) => resolve(signal ? `was killed by ${signal}` : `exited with code ${code}`));
    }),
    kill: () => void child.kill('SIGKILL'),
  };
}

interface Slot {
  id: string;
  child: Child;
  stopping: boolean;
  dead: boolean;
  /**
   * The runs reported under way, by task id, each with the timer that fires
   * when the consumer must stop it (for a run with a timeout). The worker's
   * other claims had not started, as far as the consumer knows.
   */
  running: Map<string, NodeJS.Timeout | undefined>;
  /** The run stopped for its timeout, and the error it fails with. */
  timedOut?: { taskId: string; error: TaskTimeout };
  /** Set once a replacement is under way, so that the exit handler and the health check do not both start one. */
  replacing?: boolean;
}

/**
 * How much longer than a task's timeout a worker gets before it is
 * terminated: a task that awaits times itself out inside the worker first,
 * which keeps the worker; only one that blocks its event loop is killed.
 */
const KILL_MARGIN_MS = 1000;

/**
 * A worker that dies before it is ready (its module fails to load, a startup
 * hook throws) would die again at once: its replacement waits this long,
 * doubling with each failure up to the maximum. One that dies later (a task
 * killed it) is replaced at once.
 */
const START_RETRY_MS = 1000;
const START_RETRY_MAX_MS = 30_000;

/**
 * Workers in worker_threads or child processes. Each imports the user's
 * module itself, so its registry is filled there and the consumer's own
 * process never runs task code. Their log lines come back here.
 */
export class IsolatedPool implements WorkerPool {
  private slots: Slot[] = [];
  private stopping = false;
  /** Counts stops, so that a replacement waiting to retry knows its pool was stopped meanwhile. */
  private generation = 0;
  private retryTimers = new Set<NodeJS.Timeout>();

  constructor(
    readonly type: 'thread' | 'process',
    private readonly huey: Huey,
    readonly workerIds: readonly string[],
    private readonly setup: Omit<WorkerSetup, 'workerId'>,
    private readonly log: (level: LogLevel, message: string, source: string) => void,
    /**
     * Called when a worker dies unasked, with the ids of the runs it had
     * reported under way and the error each of them fails with.
     */
    private readonly onDeath: (workerId: string, running: readonly string[], causeOf: (taskId: string) => Error) => Promise<void>,
  ) {}

  /**
   * The first worker starts alone and the others once it is ready: each
   * imports the Redis client and the user's module, a few hundred ms of CPU,
   * and all of them at once on a machine of few cores would make the first
   * task wait until every worker had loaded.
   */
  async start(): Promise<void> {
    const generation = this.generation;
    const keep = (slot: Slot) => {
      if (generation === this.generation) return void this.slots.push(slot);
      // Stopped while it started: told to stop, it puts back whatever it may have claimed.
      slot.stopping = true;
      slot.child.send({ type: 'stop' });
    };
    const [first, ...rest] = this.workerIds;
    if (first === undefined) return;
    keep(await this.spawn(first));
    if (generation !== this.generation) return;
    await Promise.all(rest.map(async (id) => keep(await this.spawn(id))));
  }

  private spawn(id: string): Promise<Slot> {
    const setup = { ...this.setup, workerId: id };
    const child = this.type === 'thread' ? startThread(setup) : startProcess(setup);
    const slot: Slot = { id, child, stopping: false, dead: false, running: new Map() };
    return new Promise((resolve, reject) => {
      child.onReport((report) => {
        switch (report.type) {
          case 'log':
            return this.log(report.level, report.message, id);
          case 'ready':
            return resolve(slot);
          case 'failed':
            return reject(new Error(`${id}: ${report.error}`));
          case 'started':
            for (const { taskId, timeout } of report.runs) {
              clearTimeout(slot.running.get(taskId));
              const deadline = timeout ? setTimeout(() => this.timeOut(slot, taskId, timeout), timeout * 1000 + KILL_MARGIN_MS) : undefined;
              slot.running.set(taskId, deadline);
            }
            return;
          case 'finished':
            for (const taskId of report.taskIds) {
              clearTimeout(slot.running.get(taskId));
              slot.running.delete(taskId);
            }
            return;
        }
      });
      void child.exited.then(async (how) => {
        slot.dead = true;
        for (const deadline of slot.running.values()) clearTimeout(deadline);
        reject(new Error(`${id} ${how} before it was ready`));
        if (slot.stopping) return;
        this.huey.logger.error(`${this.type} worker ${id} ${how}`);
        const died = new WorkerDiedError(`the ${this.type} worker running this task ${how}`);
        const { timedOut } = slot;
        const causeOf = (taskId: string) => (timedOut?.taskId === taskId ? timedOut.error : timedOut ? new WorkerDiedError(`its ${this.type} worker was terminated because task ${timedOut.taskId}, running beside it, ran past its timeout`) : died);
        await this.onDeath(id, [...slot.running.keys()], causeOf).catch((error: unknown) =>
          this.huey.logger.error(`could not settle the tasks of ${id}: ${String(error)}`),
        );
        if (!this.stopping) await this.replace(slot);
      });
    });
  }

  /** A run outlived its timeout by the margin: its code is stuck, so the worker goes. */
  private timeOut(slot: Slot, taskId: string, timeout: number): void {
    this.huey.logger.warn(`${slot.id}: task ${taskId} ran past its timeout of ${timeout}s; terminating the worker`);
    slot.timedOut ??= { taskId, error: new TaskTimeout(`task ${taskId} ran past its timeout of ${timeout}s and its ${this.type} worker was terminated`) };
    slot.child.kill();
  }

  /**
   * Start a worker in a dead one's place, trying again with a growing wait
   * while the new one keeps dying before it is ready. Stops trying once the
   * pool is stopped.
   */
  private async replace(slot: Slot): Promise<void> {
    if (slot.replacing || !this.slots.includes(slot)) return;
    slot.replacing = true;
    const generation = this.generation;
    for (let failures = 0; ; failures++) {
      try {
        const fresh = await this.spawn(slot.id);
        const i = this.slots.indexOf(slot);
        if (i < 0 || generation !== this.generation) {
          // Stopped meanwhile: this worker is not wanted. Told to stop, it puts back what it may have claimed.
          fresh.stopping = true;
          fresh.child.send({ type: 'stop' });
          return;
        }
        this.slots[i] = fresh;
        if (!this.stopping) this.huey.logger.warn(`worker ${slot.id} was replaced`);
        return;
      } catch (error) {
        const wait = Math.min(START_RETRY_MAX_MS, START_RETRY_MS * 2 ** failures);
        this.huey.logger.error(`could not start ${slot.id}: ${error instanceof Error ? error.message : String(error)}; trying again in ${wait / 1000}s`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => (this.retryTimers.delete(timer), resolve()), wait);
          this.retryTimers.add(timer);
        });
        if (generation !== this.generation || !this.slots.includes(slot)) return;
      }
    }
  }

  async stop(graceMs: number): Promise<string[]> {
    this.stopping = true;
    this.generation++;
    for (const timer of this.retryTimers) clearTimeout(timer);
    this.retryTimers.clear();
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
    this.stopping = false;
    return interrupted;
  }

  /** Replace workers found dead that are not being replaced already: a last resort, as each is replaced when its exit is seen. */
  async check(): Promise<string[]> {
    const replaced: string[] = [];
    for (const slot of [...this.slots]) {
      if (!slot.dead || slot.stopping || slot.replacing) continue;
      await this.replace(slot);
      replaced.push(slot.id);
    }
    return replaced;
  }
}
