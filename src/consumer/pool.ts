import type { Huey } from '../huey.js';
import { Worker, type WorkerOptions } from './worker.js';

export type WorkerType = 'async' | 'thread' | 'process';
export const WORKER_TYPES: readonly WorkerType[] = ['async', 'thread', 'process'];

/**
 * Where the workers' loops run. Every kind runs the same `Worker` loop; a
 * pool only decides where: on this event loop, in threads, or in processes.
 */
export interface WorkerPool {
  readonly type: WorkerType;
  readonly workerIds: readonly string[];
  /** Start every worker; resolves once each is taking work. */
  start(): Promise<void>;
  /**
   * Let every worker finish its task and stop. Workers still busy after
   * `graceMs` are interrupted. Resolves with the ids of interrupted workers,
   * whose claimed messages the consumer puts back.
   */
  stop(graceMs: number): Promise<string[]>;
  /** Replace workers that died (their tasks were settled when they died). Resolves with the ids replaced. */
  check(): Promise<string[]>;
}

export async function runHooks(hooks: ReadonlyArray<() => void | Promise<void>>, huey: Huey, what: string): Promise<void> {
  for (const hook of hooks) {
    try {
      await hook();
    } catch (error) {
      huey.logger.error(`${what} hook failed: ${error instanceof Error ? error.stack : String(error)}`);
    }
  }
}

/**
 * N worker loops on this process's event loop: the right choice for tasks
 * that wait on I/O. A task that blocks the CPU blocks every loop here; use
 * thread or process workers for those.
 */
export class AsyncPool implements WorkerPool {
  readonly type = 'async';
  private workers: Worker[] = [];
  private running: Array<Promise<void>> = [];

  constructor(
    private readonly huey: Huey,
    readonly workerIds: readonly string[],
    private readonly options: WorkerOptions,
  ) {}

  async start(): Promise<void> {
    this.workers = this.workerIds.map((id) => new Worker(this.huey, id, this.options));
    // Startup hooks run once per worker, as they do in thread and process workers.
    for (const _ of this.workers) await runHooks(this.huey.startupHooks, this.huey, 'startup');
    this.running = this.workers.map((worker) => worker.run());
  }

  async stop(graceMs: number): Promise<string[]> {
    for (const worker of this.workers) worker.stop();
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'timeout'>((resolve) => (timer = setTimeout(resolve, graceMs, 'timeout')));
    const finished = await Promise.race([Promise.all(this.running), graceOver]);
    clearTimeout(timer);
    // An async task cannot be stopped from outside; the busy ones are left to the process exit.
    const interrupted = finished === 'timeout' ? this.workers.filter((w) => w.current !== null).map((w) => w.id) : [];
    for (const _ of this.workers) await runHooks(this.huey.shutdownHooks, this.huey, 'shutdown');
    this.workers = [];
    this.running = [];
    return interrupted;
  }

  async check(): Promise<string[]> {
    // Loops on this event loop cannot die on their own: Worker.run catches everything.
    return [];
  }
}
