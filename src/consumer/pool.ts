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
 * N async workers: one worker loop on this process's event loop that keeps
 * up to N tasks running at once, sharing one claimed list, its batches and
 * its connections. The right choice for tasks that wait on I/O. A task that
 * blocks the CPU blocks all of them; use thread or process workers for those.
 */
export class AsyncPool implements WorkerPool {
  readonly type = 'async';
  readonly workerIds: readonly string[];
  private worker?: Worker;
  private running?: Promise<void>;

  constructor(
    private readonly huey: Huey,
    workerId: string,
    private readonly concurrency: number,
    private readonly options: WorkerOptions,
  ) {
    this.workerIds = [workerId];
  }

  async start(): Promise<void> {
    this.worker = new Worker(this.huey, this.workerIds[0]!, { ...this.options, concurrency: this.concurrency });
    // Startup hooks run once per worker, as they do in thread and process workers.
    for (let i = 0; i < this.concurrency; i++) await runHooks(this.huey.startupHooks, this.huey, 'startup');
    this.running = this.worker.run();
  }

  async stop(graceMs: number): Promise<string[]> {
    const worker = this.worker;
    if (!worker) return [];
    worker.stop();
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'timeout'>((resolve) => (timer = setTimeout(resolve, graceMs, 'timeout')));
    const finished = await Promise.race([this.running, graceOver]);
    clearTimeout(timer);
    // An async task cannot be stopped from outside; the busy ones are left to the process exit.
    const interrupted = finished === 'timeout' && worker.busy ? [worker.id] : [];
    for (let i = 0; i < this.concurrency; i++) await runHooks(this.huey.shutdownHooks, this.huey, 'shutdown');
    this.worker = undefined;
    this.running = undefined;
    return interrupted;
  }

  async check(): Promise<string[]> {
    // Loops on this event loop cannot die on their own: Worker.run catches everything.
    return [];
  }
}
