import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { DateTime } from 'luxon';
import { ConfigurationError, WorkerDiedError } from '../errors.js';
import type { Huey } from '../huey.js';
import type { Message } from '../message.js';
import type { Claim, Storage } from '../storage/storage.js';
import { checkQueueName } from '../validate.js';
import { IsolatedPool } from './isolated-pool.js';
import type { LogLevel } from './log.js';
import { AsyncPool, WORKER_TYPES, type WorkerPool, type WorkerType } from './pool.js';
import { Scheduler } from './scheduler.js';

export interface ConsumerOptions {
  /** How many workers. @defaultValue 1 */
  workers?: number;
  /** Where workers run: `async` loops on this event loop, `thread`s or `process`es. @defaultValue 'async' */
  workerType?: WorkerType;
  /**
   * Tasks each thread or process worker runs at once on its own event loop:
   * for tasks that wait (I/O) as well as compute. Async workers take their
   * concurrency from `workers`. @defaultValue 1
   */
  concurrency?: number;
  /** Seconds between polls at first, for storages that cannot block. @defaultValue 0.1 */
  delay?: number;
  /** Each empty poll multiplies the wait by this. @defaultValue 1.15 */
  backoff?: number;
  /** The longest wait between polls, in seconds. @defaultValue 10 */
  maxDelay?: number;
  /**
   * Seconds of work each worker may claim ahead of the task it runs, judged
   * by how long its tasks have been taking (see `WorkerOptions.prefetchWindow`);
   * 0 claims one message at a time. @defaultValue 0.01 for async workers, 0.05 for thread and process workers
   */
  prefetchWindow?: number;
  /** Enqueue periodic tasks. @defaultValue true */
  periodic?: boolean;
  /** Seconds between looks at the schedule. @defaultValue 1 */
  schedulerInterval?: number;
  /** Clear every lock at startup (left by a process that died holding it). @defaultValue false */
  flushLocks?: boolean;
  /** Only these locks are cleared at startup (implies flushing them). */
  extraLocks?: string[];
  /** Look after thread and process workers. @defaultValue true */
  healthCheck?: boolean;
  /** Seconds between health checks. @defaultValue 10 */
  healthCheckInterval?: number;
  /** Seconds running tasks get to finish at shutdown before they are interrupted and requeued. @defaultValue 30 */
  gracePeriod?: number;
  /**
   * Seconds a consumer's claims stay its own without a heartbeat. The
   * consumer renews the lease of itself and its workers every third of it;
   * when a consumer dies (SIGKILL, power cut) another consumer, or the same
   * one restarted, takes its claimed tasks once the lease has run out: those
   * it had started are settled as failed runs (retried if they have retries
   * left), those it had only claimed ahead go back on the queue untouched.
   * @defaultValue 30
   */
  lease?: number;
  /**
   * How many times a message may be put back on the queue unstarted, taken
   * from consumers that died, before it fails for good with a
   * WorkerDiedError: a message whose run kills its consumer before the
   * start is even recorded must not go round for ever. @defaultValue 5
   */
  maxStalls?: number;
  /** `MODULE.EXPORT` of the Huey: thread and process workers import it themselves. */
  module?: string;
  /** Where `module` is resolved from. @defaultValue process.cwd() */
  cwd?: string;
  /** The level of log lines thread and process workers send back. @defaultValue 'info' */
  logLevel?: LogLevel;
  /** Write a line that a thread or process worker logged. Default: the Huey's logger. */
  workerLog?: (level: LogLevel, message: string, workerId: string) => void;
  /** The clock (ms since the epoch) of the scheduler and of async workers, for tests. */
  now?: () => number;
  /**
   * The queues to serve, in strict order: each worker takes from the first
   * that has messages (RQ's order). Default: every queue the Huey knows, the
   * default queue first (`huey.queueNames`).
   */
  queues?: readonly string[];
}

/** True for a number of seconds over 0 and at most 60 that goes a whole number of times into a minute. */
export function dividesMinute(interval: unknown): boolean {
  if (typeof interval !== 'number' || !(interval > 0 && interval <= 60)) return false;
  const times = 60 / interval;
  return Math.abs(times - Math.round(times)) < 1e-9;
}

/** Most messages whose stalls in dead workers are remembered at once. */
const MAX_STALL_RECORDS = 10_000;

/**
 * Runs a Huey: a Scheduler and N workers. The consumer talks only to the
 * Huey and its Storage interface; where a task runs is the pool's business.
 */
export class Consumer {
  readonly id: string;
  readonly workerType: WorkerType;
  readonly workerCount: number;
  /** Tasks each thread or process worker runs at once. */
  readonly concurrency: number;
  readonly scheduler: Scheduler;
  readonly pool: WorkerPool;
  /** The queues served, in order. */
  readonly queues: readonly string[];
  /** The storage of every queue served (of every shard): leases, adoption and put-backs go to each. */
  private readonly storages: Storage[];
  private readonly options: ConsumerOptions;
  private timers: Array<() => void> = [];
  /** How often each message was held unstarted by a thread or process worker that died (by its data). */
  private stalls = new Map<string, number>();
  private state: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  private stopped?: Promise<void>;
  private onStopped!: () => void;
  /** Resolves once the consumer has stopped, however the stop was asked for. */
  readonly finished = new Promise<void>((resolve) => (this.onStopped = resolve));

  constructor(
    readonly huey: Huey,
    options: ConsumerOptions = {},
  ) {
    this.options = options;
    this.workerType = options.workerType ?? 'async';
    this.workerCount = options.workers ?? 1;
    if (!WORKER_TYPES.includes(this.workerType)) {
      throw new ConfigurationError(`worker type must be one of ${WORKER_TYPES.join(', ')}, not "${this.workerType}"`);
    }
    if (!Number.isInteger(this.workerCount) || this.workerCount < 1) throw new ConfigurationError('workers must be a whole number of at least 1');
    this.concurrency = options.concurrency ?? 1;
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) throw new ConfigurationError('concurrency must be a whole number of at least 1');
    if (this.workerType === 'async' && this.concurrency > 1) {
      throw new ConfigurationError('concurrency is for thread and process workers; async workers run as many tasks at once as `workers` says');
    }
    // As Huey's consumer: a backoff under 1 would poll ever faster, and an interval that does not divide
    // a minute would miss minutes of periodic tasks. Sub-second intervals that divide 60 stay allowed.
    if (options.backoff !== undefined && !(typeof options.backoff === 'number' && options.backoff >= 1 && Number.isFinite(options.backoff))) {
      throw new ConfigurationError(`backoff must be a number of at least 1, not ${String(options.backoff)}`);
    }
    if (options.schedulerInterval !== undefined && !dividesMinute(options.schedulerInterval)) {
      throw new ConfigurationError(`schedulerInterval must divide 60 seconds (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 or 60; or a fraction such as 0.5), not ${String(options.schedulerInterval)}`);
    }
    if (this.workerType !== 'async' && !options.module) {
      throw new ConfigurationError(`${this.workerType} workers import the Huey module themselves: give its MODULE.EXPORT as the module option`);
    }
    this.queues = [...(options.queues ?? huey.queueNames)];
    if (this.queues.length === 0) throw new ConfigurationError('queues must name at least one queue');
    for (const queue of this.queues) checkQueueName(queue, 'queues');
    if (new Set(this.queues).size !== this.queues.length) throw new ConfigurationError(`queues names a queue twice: ${this.queues.join(', ')}`);
    this.storages = this.queues.flatMap((queue) => huey.queueStorages(queue));
    // The random part keeps a restarted consumer (the same host name and pid 1 in a container)
    // from renewing the leases of the one that died, whose claims must be adopted.
    this.id = `${hostname()}.${process.pid}.${randomBytes(2).toString('hex')}`;
    const workerIds = Array.from({ length: this.workerCount }, (_, i) => `${this.id}.w${i + 1}`);
    const workerOptions = { delay: options.delay, backoff: options.backoff, maxDelay: options.maxDelay, prefetchWindow: this.prefetchWindow, queues: this.queues };
    this.pool =
      this.workerType === 'async'
        ? new AsyncPool(huey, `${this.id}.async`, this.workerCount, { ...workerOptions, now: options.now })
        : new IsolatedPool(
            this.workerType,
            huey,
            workerIds,
            {
              spec: options.module!,
              cwd: options.cwd ?? process.cwd(),
              options: { ...workerOptions, concurrency: this.concurrency },
              logLevel: options.logLevel ?? 'info',
              leaseMs: this.leaseSeconds * 1000,
              graceMs: this.graceSeconds * 1000,
            },
            options.workerLog ?? ((level, message, workerId) => huey.logger[level](`${workerId}: ${message}`)),
            (workerId, running, causeOf) => this.settleDeadWorker(workerId, running, causeOf),
          );
    this.scheduler = new Scheduler(huey, { interval: options.schedulerInterval, periodic: options.periodic, now: options.now, queues: this.queues });
  }

  /** Connect, clear locks if asked, and start the workers and the scheduler. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error('a consumer starts once');
    this.state = 'running';
    await this.huey.connect();
    await this.flushLocksIfAsked();
    this.huey.logger.info(this.banner());
    for (const warning of (await this.huey.storage.setupWarnings?.()) ?? []) this.huey.logger.warn(warning);
    const unknown = this.queues.filter((queue) => !this.huey.queueNames.includes(queue));
    if (unknown.length > 0) {
      this.huey.logger.warn(`serving ${unknown.join(', ')}, which the module neither declares nor names in a task: a typo? (queues it knows: ${this.huey.queueNames.join(', ')})`);
    }
    // Named queues' storages share the instance's connection, but a cluster routes each to its own master.
    await Promise.all(this.storages.map((storage) => storage.connect()));
    await this.renewLeases();
    await this.adoptOrphans();
    // A stop asked for while starting (Ctrl-C as it loads) wins: no worker starts after it.
    if (this.state !== 'running') return;
    await this.pool.start();
    if (this.state !== 'running') return;
    this.scheduler.start();
    this.huey.logger.info(`consumer running with ${this.workerCount} ${this.workerType} worker(s)`);
    const leaseMs = this.leaseSeconds * 1000;
    this.repeat(leaseMs / 3, 'lease renewal', async () => {
      // Adoption goes on where it can even when one queue's storage could not be renewed.
      const renewed = this.renewLeases().then(() => undefined, (error: unknown) => error);
      await this.adoptOrphans();
      const failure = await renewed;
      if (failure !== undefined) throw failure;
    });
    if (this.workerType !== 'async' && (this.options.healthCheck ?? true)) {
      this.repeat((this.options.healthCheckInterval ?? 10) * 1000, 'health check', async () => {
        for (const id of await this.pool.check()) this.huey.logger.warn(`health check: worker ${id} had died and was replaced`);
      });
    }
  }

  /**
   * Thread and process workers share the machine's cores with each other:
   * their runs, timed on the wall clock, look slower than they are, which
   * would shrink their batches to a few messages a round trip. They get a
   * wider window (measured: 4 process workers on 2 cores drained no-op tasks
   * 30% faster with 0.05 s than with 0.01 s).
   */
  private get prefetchWindow(): number {
    return this.options.prefetchWindow ?? (this.workerType === 'async' ? 0.01 : 0.05);
  }

  /** How many runs each worker of this consumer may have going at once. */
  private get slotsPerWorker(): number {
    return this.workerType === 'async' ? this.workerCount : this.concurrency;
  }

  private get leaseSeconds(): number {
    return this.options.lease ?? 30;
  }

  private get graceSeconds(): number {
    return this.options.gracePeriod ?? 30;
  }

  private get maxStalls(): number {
    return this.options.maxStalls ?? 5;
  }

  /** The lease owners of this consumer: itself (for adopted claims) and each worker. */
  private get owners(): string[] {
    return [this.id, ...this.pool.workerIds];
  }

  /** Renew on every queue's storage; one that fails (a cluster master away) does not stop the others. Throws the first failure. */
  private async renewLeases(): Promise<void> {
    const renewed = await Promise.allSettled(this.storages.map((storage) => storage.renewLeases(this.owners, this.leaseSeconds * 1000)));
    const failed = renewed.find((outcome) => outcome.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /**
   * Take over the claims of consumers whose lease ran out: the tasks they
   * had started fail as runs (retried if they have retries left), the ones
   * they had only claimed ahead are already back on the queue, untouched.
   * Returns how many were settled as failed runs.
   */
  async adoptOrphans(): Promise<number> {
    let failed = 0;
    let failure: { error: unknown } | undefined;
    for (const storage of this.storages) {
      try {
        failed += await this.adoptFrom(storage);
      } catch (error) {
        // One queue's storage away (a cluster master failing over) must not hold back the others.
        failure ??= { error };
      }
    }
    if (failure) throw failure.error;
    return failed;
  }

  /** `adoptOrphans` on one queue's storage: each queue keeps the claims and leases of its own. */
  private async adoptFrom(storage: Storage): Promise<number> {
    const { maxStalls } = this;
    const stalled = new Set<string>();
    let adopted = 0;
    for (const owner of await storage.expiredLeases()) {
      // Consumers of one app run with the same settings: the dead one had as many runs going as this one may.
      const adoption = await storage.adoptClaims(owner, this.id, maxStalls, this.slotsPerWorker);
      if (!adoption) continue;
      const { started, requeued } = adoption;
      if (started + requeued + adoption.stalled.length > 0) {
        const parts = [`${started} had started and fail as runs`, `${requeued} had not and go back on the queue`];
        if (adoption.stalled.length) parts.push(`${adoption.stalled.length} were put back unstarted ${maxStalls} times before and fail for good`);
        this.huey.logger.warn(`the lease of ${owner} ran out: of the tasks it held, ${parts.join(', ')}`);
      }
      for (const claim of adoption.stalled) stalled.add(claim.receipt ?? claim.data);
      adopted += started + adoption.stalled.length;
    }
    if (adopted === 0) return 0;
    return this.failClaims(storage, this.id, new WorkerDiedError('the consumer running this task stopped renewing its lease (it died or lost its storage)'), {
      stalled,
      stalledCause: new WorkerDiedError(
        `taken back unstarted from consumers that died more than ${maxStalls} times (max stalls): it may be what kills them, so it fails without running again`,
      ),
    });
  }

  /** Run `fn` every `ms` while running; a failure is logged and the next round still comes. */
  private repeat(ms: number, what: string, fn: () => Promise<void>): void {
    let timer: NodeJS.Timeout;
    const round = async () => {
      try {
        await fn();
      } catch (error) {
        this.huey.logger.error(`${what} failed: ${error instanceof Error ? error.message : String(error)}`);
      }
      if (this.state === 'running') timer = setTimeout(round, ms);
    };
    timer = setTimeout(round, ms);
    this.timers.push(() => clearTimeout(timer));
  }

  private async flushLocksIfAsked(): Promise<void> {
    const { flushLocks, extraLocks } = this.options;
    if (!flushLocks && !extraLocks?.length) return;
    const flushed = await this.huey.flushLocks(...(flushLocks ? [] : extraLocks!));
    this.huey.logger.info(`flushed locks: ${flushed.length ? flushed.join(', ') : 'none were held'}`);
  }

  /**
   * Stop taking work and let running tasks finish. After the grace period the
   * ones still running are interrupted and their messages put back on the queue.
   */
  stop(options: { graceful?: boolean } = {}): Promise<void> {
    this.stopped ??= this.shutdown(options.graceful ?? true);
    return this.stopped;
  }

  private async shutdown(graceful: boolean): Promise<void> {
    this.state = 'stopping';
    for (const cancel of this.timers) cancel();
    const grace = graceful ? this.graceSeconds * 1000 : 0;
    this.huey.logger.info(graceful ? `shutting down: waiting up to ${grace / 1000}s for running tasks` : 'shutting down now');
    await this.scheduler.stop();
    const interrupted = await this.pool.stop(grace);
    for (const id of interrupted) await this.requeueClaims(id);
    // Anything still claimed by a worker of this consumer goes back too.
    for (const id of this.owners) await this.requeueClaims(id);
    // A worker interrupted mid-run never cleared its status: it is gone now, whatever it last said.
    for (const id of this.pool.workerIds) await this.huey.storage.dropStatus(id);
    for (const storage of this.storages) await storage.dropLeases(this.owners);
    await this.huey.close();
    this.state = 'stopped';
    this.huey.logger.info('consumer stopped');
    this.onStopped();
  }

  /** Restart the workers (thread and process workers load the code afresh); on SIGHUP. */
  async restart(): Promise<void> {
    if (this.state !== 'running') return;
    this.huey.logger.info('restarting workers');
    const interrupted = await this.pool.stop(this.graceSeconds * 1000);
    for (const id of interrupted) await this.requeueClaims(id);
    await this.pool.start();
  }

  /**
   * Put a worker's claimed messages back at the front of the queue as they
   * were, signalling each `interrupted`: the consumer stopped them, so the
   * run does not count against the task's retries.
   */
  async requeueClaims(workerId: string): Promise<number> {
    let requeued = 0;
    for (const storage of this.storages) requeued += await this.requeueFrom(storage, workerId);
    return requeued;
  }

  private async requeueFrom(storage: Storage, workerId: string): Promise<number> {
    const claimed = await storage.claimed(workerId);
    for (const claim of claimed) {
      try {
        const message = this.huey.deserializeMessage(claim.data);
        this.huey.logger.warn(`${workerId}: ${message.name} ${message.id} was interrupted and is back on the queue`);
        await this.huey.notify('interrupted', message);
      } catch {
        // A payload that cannot be read is still requeued; the next worker dead-letters it.
      }
    }
    return claimed.length ? storage.requeue(workerId) : 0;
  }

  /**
   * Settle claims adopted from a consumer that died, all of which had
   * started (or stalled too often), as failed runs: each is retried if it has
   * retries left, or fails for good. A task that keeps killing its consumer
   * thus ends failed, not in a loop. Returns how many were settled.
   */
  private async failClaims(storage: Storage, workerId: string, cause: Error, stalls: { stalled: ReadonlySet<string>; stalledCause: Error }): Promise<number> {
    let failed = 0;
    for (const claim of await storage.claimed(workerId)) {
      const message = await this.readClaim(storage, claim);
      if (!message) continue;
      // A stalled message never ran as far as anyone knows: its retries do not apply.
      const stalled = stalls.stalled.has(claim.receipt ?? claim.data);
      await this.failRun(storage, workerId, claim, stalled ? { ...message, retries: 0 } : message, stalled ? stalls.stalledCause : cause);
      failed++;
    }
    return failed;
  }

  /** The message a claim holds, or null when it is corrupt (it is then dead-lettered). */
  private async readClaim(storage: Storage, claim: Claim): Promise<Message | null> {
    try {
      return this.huey.deserializeMessage(claim.data);
    } catch (error) {
      await storage.deadLetter(claim, `corrupt payload: ${error instanceof Error ? error.message : String(error)}`);
      return null;
    }
  }

  /** Settle one claim as a failed run of `message`, and ack it. */
  private async failRun(storage: Storage, workerId: string, claim: Claim, message: Message, cause: Error): Promise<void> {
    const outcome = await this.huey.fail(message, cause);
    await this.huey.recordOutcome(message, outcome, { worker: workerId });
    this.huey.logger.error(`${workerId}: ${message.name} ${message.id} ${outcome.status === 'retrying' ? 'will be retried' : 'failed'}: ${cause.name}: ${cause.message}`);
    await storage.ack(claim);
    if (outcome.status !== 'retrying') await this.huey.endKeyed(message);
  }

  /**
   * Settle the claims of a thread or process worker that died: the runs it
   * had reported under way fail as runs (retried if they have retries left);
   * the rest (claimed ahead, or started too recently to be reported) go back
   * to the front of the queue untouched. Those that held a run slot count a
   * stall, so that a task that kills its worker before its start is reported
   * ends failed after `maxStalls` deaths instead of killing workers for ever.
   */
  async settleDeadWorker(workerId: string, running: readonly string[], causeOf: (taskId: string) => Error): Promise<void> {
    // The worker's run slots, shared by all its queues: a batch comes from one queue at a time.
    const slots = { left: this.concurrency };
    for (const storage of this.storages) await this.settleDeadWorkerIn(storage, workerId, running, causeOf, slots);
  }

  private async settleDeadWorkerIn(storage: Storage, workerId: string, running: readonly string[], causeOf: (taskId: string) => Error, slots: { left: number }): Promise<void> {
    const { maxStalls } = this;
    const putBack: Claim[] = [];
    // Oldest first: runs start in claim order, so only the oldest `concurrency` claims held run
    // slots; those not reported may have been running unreported, and count a stall. The ones
    // after them were only claimed ahead.
    for (const claim of (await storage.claimed(workerId)).reverse()) {
      const inSlot = slots.left-- > 0;
      let message = await this.readClaim(storage, claim);
      if (!message) continue;
      let cause: Error | undefined;
      if (running.includes(message.id)) {
        cause = causeOf(message.id);
      } else if (inSlot && this.countStall(claim.data) > maxStalls) {
        cause = new WorkerDiedError(`its ${this.workerType} worker died ${maxStalls + 1} times before its start was reported (max stalls): it may be what kills them, so it fails without running again`);
        message = { ...message, retries: 0 };
      }
      if (cause) await this.failRun(storage, workerId, claim, message, cause);
      else putBack.push(claim);
    }
    const requeued = await storage.release(putBack);
    if (requeued > 0) this.huey.logger.warn(`${workerId}: ${requeued} task(s) it had claimed and not started go back on the queue`);
  }

  /** Count one more death of a worker holding `data` unstarted; returns the count. */
  private countStall(data: string): number {
    // A bound on memory: counts are a guard against crash loops, not a record.
    if (this.stalls.size > MAX_STALL_RECORDS) this.stalls.clear();
    const count = (this.stalls.get(data) ?? 0) + 1;
    this.stalls.set(data, count);
    return count;
  }

  /**
   * Start, and stop on SIGTERM or SIGINT (a second SIGINT exits at once);
   * restart the workers on SIGHUP. Resolves with the exit code once stopped.
   */
  async run(): Promise<number> {
    let interrupts = 0;
    let exitCode = 0;
    const onStop = (signal: NodeJS.Signals) => {
      if (signal === 'SIGINT' && ++interrupts > 1) {
        this.huey.logger.warn('second SIGINT: exiting now');
        exitCode = 1;
        // Kill thread and process workers without waiting, put their tasks back, and leave.
        void this.pool
          .stop(0)
          .then(() => Promise.all(this.pool.workerIds.map((id) => this.requeueClaims(id))))
          .finally(() => process.exit(1));
        return;
      }
      this.huey.logger.info(`received ${signal}`);
      void this.stop();
    };
    const onHangUp = () => void this.restart().catch((error) => this.huey.logger.error(`restart failed: ${String(error)}`));
    process.on('SIGTERM', onStop);
    process.on('SIGINT', onStop);
    process.on('SIGHUP', onHangUp);
    try {
      await this.start();
      await this.finished;
    } finally {
      process.off('SIGTERM', onStop);
      process.off('SIGINT', onStop);
      process.off('SIGHUP', onHangUp);
    }
    return exitCode;
  }

  /** The startup lines: settings, tasks, periodic tasks with their next run. */
  banner(): string {
    const o = this.options;
    const storage = this.huey.storage;
    const now = DateTime.utc();
    const lines = [
      `huey-ts consumer for "${this.huey.name}" (${this.id})`,
      `- storage: ${storage.kind}${storage.blocking ? ', blocking dequeue' : `, polling (delay ${o.delay ?? 0.1}s, backoff ${o.backoff ?? 1.15}, max ${o.maxDelay ?? 10}s)`}`,
      `- queues: ${this.queues.map((queue) => (this.huey.shardCount(queue) > 1 ? `${queue} (${this.huey.shardCount(queue)} shards)` : queue)).join(', ')}${this.queues.length > 1 ? ' (in this order)' : ''}`,
      `- workers: ${this.workerCount} ${this.workerType}${this.concurrency > 1 ? `, ${this.concurrency} tasks at once each` : ''}; prefetch window: ${this.prefetchWindow}s`,
      `- periodic tasks: ${o.periodic ?? true ? 'on' : 'off'}; scheduler interval: ${o.schedulerInterval ?? 1}s`,
      `- health check: ${this.workerType === 'async' ? 'not needed for async workers' : (o.healthCheck ?? true) ? `every ${o.healthCheckInterval ?? 10}s` : 'off'}`,
      `- grace period: ${this.graceSeconds}s; lease: ${this.leaseSeconds}s`,
      'Tasks:',
    ];
    for (const name of this.huey.taskNames.sort()) {
      const periodic = this.huey.definition(name)?.periodic;
      if (!periodic) {
        lines.push(`+ ${name}`);
        continue;
      }
      const next = periodic.next?.(now);
      const schedule = typeof periodic.toString === 'function' && periodic.toString !== Function.prototype.toString ? ` ${periodic.toString()}` : '';
      lines.push(`+ ${name} (periodic${schedule}${next ? `, next run ${next.toUTC().toISO({ suppressMilliseconds: true })}` : ''})`);
    }
    return lines.join('\n');
  }
}
