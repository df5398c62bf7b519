import type { DateTime } from 'luxon';
import { ConfigurationError, TaskTimeout } from './errors.js';
import type { Huey, RevokeOptions } from './huey.js';
import type { Message } from './message.js';
import type { Result } from './result.js';
import { storableText } from './storable-text.js';
import type { ResultGroup } from './result-group.js';
import type { Signature } from './signature.js';
import { checkCallOptions, checkKey, checkRetryWaits, checkTaskOptions, DEFAULT_QUEUE, etaOf, MAX_PARENTS } from './validate.js';

/** Options of `huey.task(options)`; each can be overridden per call through `schedule()`. */
export interface TaskOptions {
  /** Registry name. Default: the function's name, or `Class.method` for a decorated method. */
  name?: string;
  /** How many times a failed run is tried again. @defaultValue 0 */
  retries?: number;
  /** Seconds to wait before a retry. @defaultValue 0 */
  retryDelay?: number;
  /** Each retry multiplies the delay by this (2 doubles it). @defaultValue 1 */
  retryBackoff?: number;
  /** Higher runs first on storages that order by priority. @defaultValue 0 */
  priority?: number;
  /**
   * A Date, or seconds after the task falls due (its enqueue, or its eta when
   * delayed; each retry starts them again), after which it is dropped unrun
   * (signalled `expired`).
   */
  expires?: number | Date;
  /** Pass a `TaskContext` as the function's last argument. @defaultValue false */
  context?: boolean;
  /**
   * Seconds a run may take; past it the run fails with `TaskTimeout` (retries
   * apply). Thread and process workers are terminated and replaced; async
   * workers abort `context.signal`, which the task must heed to really stop.
   */
  timeout?: number;
  /**
   * The named queue its calls go to (`huey-consumer -Q` chooses which
   * queues a consumer serves, in order). Default: the default queue.
   */
  queue?: string;
  /**
   * The key of a call, from its arguments: while a task called with a key is
   * enqueued, scheduled or running, another call with the same key returns
   * the first call's Result instead of enqueueing. See Deduplication.
   */
  key?: (...args: any[]) => string;
  /** With a key: a call made while the keyed task waits in the schedule replaces its arguments and eta (keeping its id). @defaultValue false */
  debounce?: boolean;
  /** With a key: seconds after which the key is let go even if its task has not ended. Default: held until the task ends. */
  keyTtl?: number;
}

/** One call's settings: `task.schedule({ args, delay })`; `schedule()` needs `delay` or `eta`. */
export interface ScheduleOptions<A extends unknown[]> {
  args: A;
  /** Seconds from now. */
  delay?: number;
  /** A point in time (Date or luxon DateTime). */
  eta?: Date | DateTime;
  /** Use this id instead of a fresh one. */
  id?: string;
  retries?: number;
  retryDelay?: number;
  retryBackoff?: number;
  priority?: number;
  expires?: number | Date;
  timeout?: number;
  /** The named queue this call goes to, instead of the task's. */
  queue?: string;
  /**
   * Tasks that must complete first (their Results, or ids): until then this
   * one is `deferred`. Needs task records. See Dependencies.
   */
  dependsOn?: ReadonlyArray<Result<unknown> | string>;
  /** With `dependsOn`: run even if a task it depends on failed for good or was revoked. @defaultValue false */
  runOnParentFailure?: boolean;
  /** This call's deduplication key, instead of the one the task computes. */
  key?: string;
  debounce?: boolean;
  keyTtl?: number;
}

/** What a task with `context: true` receives as its last argument. */
export interface TaskContext {
  readonly id: string;
  readonly name: string;
  readonly args: readonly unknown[];
  /** Retries left after this run. */
  readonly retries: number;
  readonly retryDelay: number;
  readonly priority: number;
  readonly eta: Date | null;
  readonly expires: Date | null;
  /** Seconds this run may take (the task's or the call's `timeout`), or null for no limit. */
  readonly timeout: number | null;
  /** The queue it runs on (`'default'` unless the task or the call named one). */
  readonly queue: string;
  readonly huey: Huey;
  /** Aborted when the run's `timeout` passes: pass it to fetch() and friends, or check it. */
  readonly signal: AbortSignal;
  /** What `onEnqueue` hooks wrote when the task was enqueued (trace context, ...); empty when none. */
  readonly headers: Readonly<Record<string, string>>;
  /** Seconds left before the run's `timeout` (0 once past it), or Infinity without one: Huey's `time_remaining`. */
  timeRemaining(): number;
  /** Throw `TaskTimeout` once the run is past its `timeout`: a cooperative check for loops (Huey's `check_timeout`). */
  checkTimeout(): void;
  /**
   * Keep `value` (a number, or JSON of at most 4 KiB) as the task's progress
   * on its record, for `result.progress()`, `huey status` and the dashboard.
   * Cheap to call in a loop: at most one write per 100 ms, the latest value last.
   */
  progress(value: unknown): void;
  /**
   * Add a line to the run's log on its record (the latest 50 lines of at
   * most 1,000 characters each), for `(await result.status()).log`, `huey
   * status` and the dashboard. Written as progress is: at most every 100 ms.
   */
  log(line: string): void;
}

/** The handle a task definition returns: call it to enqueue. */
export interface TaskWrapper<A extends unknown[], R> {
  /** Enqueue a run. Argument errors throw at once; a storage error rejects `result.enqueued`. */
  (...args: A): Result<R>;
  /** The registry name. */
  readonly taskName: string;
  readonly options: Readonly<TaskOptions>;
  /** Enqueue and wait until the storage has it. */
  enqueue(...args: A): Promise<Result<R>>;
  /**
   * Enqueue with per-call settings and a `delay` or an `eta` (one of them is
   * required, as in Huey; `delay: 0` runs now with the other settings).
   */
  schedule(options: ScheduleOptions<A>): Result<R>;
  /** Run the function here and now, without the queue. */
  callLocal(...args: A): Promise<R>;
  /** This call written down, to enqueue later in a pipeline or group: `add.s(1, 2).then(add, 3)`. */
  s(...args: A): Signature<R>;
  /** Enqueue one call per item, in one round trip where the storage can. */
  map(items: Iterable<A>): ResultGroup<R[]>;
  /** Skip every run of this task until `restore()` (or once, or until a time). */
  revoke(options?: RevokeOptions): Promise<void>;
  restore(): Promise<boolean>;
  isRevoked(): Promise<boolean>;
}

type AnyFunction = (...args: any[]) => any;

/** The arguments a caller passes: the function's parameters without a trailing TaskContext. */
export type TaskArgs<F extends AnyFunction> = Parameters<F> extends [...infer A, TaskContext] ? A : Parameters<F>;

/** `huey.task(options)`: wraps a function, or decorates a class method. */
export interface TaskFactory {
  <F extends AnyFunction>(fn: F): TaskWrapper<Parameters<F>, Awaited<ReturnType<F>>>;
  (target: object, propertyKey: string | symbol, descriptor: PropertyDescriptor): void;
}

/** `huey.task({ context: true })`: the function's last parameter is the TaskContext. */
export interface ContextTaskFactory {
  <A extends unknown[], R>(fn: (...args: [...A, TaskContext]) => R): TaskWrapper<A, Awaited<R>>;
  (target: object, propertyKey: string | symbol, descriptor: PropertyDescriptor): void;
}

/**
 * When a periodic task runs: called with the start of each minute (a luxon
 * DateTime in UTC), true to run in that minute. `crontab()` makes one; any
 * function of the same shape will do. `next` lets the banner show the next run.
 */
export interface PeriodicSchedule {
  (minute: DateTime): boolean;
  next?(after: DateTime): DateTime | null;
}

/** `huey.periodicTask(schedule)`: wraps or decorates a function that takes no call arguments. */
export interface PeriodicTaskFactory<P extends unknown[]> {
  <R>(fn: (...args: P) => R): TaskWrapper<[], Awaited<R>>;
  (target: object, propertyKey: string | symbol, descriptor: PropertyDescriptor): void;
}

/** A registered task: the function, how to call it, and its defaults. */
export class TaskDefinition {
  constructor(
    readonly name: string,
    readonly fn: AnyFunction,
    readonly options: Readonly<TaskOptions>,
    /** The `this` for the call: the class for a static method, an instance for an instance method. */
    private readonly thisArg: () => unknown = () => undefined,
    /** Set for a periodic task: the minutes it runs in. */
    readonly periodic?: PeriodicSchedule,
  ) {
    // A bad option fails where the task is defined, not in a worker much later.
    checkTaskOptions(options);
  }

  /**
   * Build the message for one call, applying per-call overrides over the
   * task's defaults. A per-call option that cannot work throws
   * `ConfigurationError` naming it.
   */
  message(id: string, args: unknown[], call: Partial<ScheduleOptions<unknown[]>> = {}, now = Date.now()): Message {
    checkCallOptions(call);
    const expires = call.expires ?? this.options.expires;
    const eta = etaOf(call, now);
    const message: Message = {
      id,
      name: this.name,
      args,
      retries: call.retries ?? this.options.retries ?? 0,
      retryDelay: call.retryDelay ?? this.options.retryDelay ?? 0,
      retryBackoff: call.retryBackoff ?? this.options.retryBackoff ?? 1,
      priority: call.priority ?? this.options.priority ?? 0,
      eta,
      // Seconds count from when the call falls due, not from now: see `dueAt`.
      expires: expires === undefined ? null : expires instanceof Date ? expires.getTime() : (eta ?? now) + expires * 1000,
      timeout: call.timeout ?? this.options.timeout ?? null,
    };
    if (typeof expires === 'number') message.expiresIn = expires;
    const queue = call.queue ?? this.options.queue;
    if (queue !== undefined && queue !== DEFAULT_QUEUE) message.queue = queue;
    if (call.dependsOn !== undefined) {
      message.dependsOn = parentsOf(call.dependsOn);
      if (call.runOnParentFailure) message.runOnParentFailure = true;
    }
    const key = call.key ?? (this.options.key ? checkKey(this.options.key(...args), `the key ${this.name}'s key() computed`) : undefined);
    if (key !== undefined) {
      const debounce = call.debounce ?? this.options.debounce;
      const ttl = call.keyTtl ?? this.options.keyTtl;
      message.dedupe = { key, ...(debounce ? { debounce: true } : {}), ...(ttl === undefined ? {} : { ttl }) };
    }
    // Per-call retries may meet the task's delay and backoff: check them together.
    if (call.retries !== undefined || call.retryDelay !== undefined || call.retryBackoff !== undefined) {
      checkRetryWaits(message.retries, message.retryDelay, message.retryBackoff);
    }
    return message;
  }

  /**
   * Run the function for `message`, passing the context when the task asked
   * for it, within the message's timeout (aborting `abort` when it passes).
   */
  invoke(message: Message, context: TaskContext, abort?: AbortController): Promise<unknown> {
    const args = this.options.context ? [...message.args, context] : message.args;
    // An async function's rejection and a sync function's throw both become a rejected promise.
    const running = new Promise((resolve) => resolve(this.fn.apply(this.thisArg(), args)));
    return message.timeout && abort ? withTimeout(running, message, abort) : running;
  }
}

/** The tasks a call depends on, as its message names them: ids, and queues where not the default. */
function parentsOf(dependsOn: unknown): Array<{ id: string; queue?: string }> {
  if (!Array.isArray(dependsOn) || dependsOn.length > MAX_PARENTS) throw new ConfigurationError(`dependsOn must be a list of at most ${MAX_PARENTS} Results or task ids`);
  return dependsOn.map((parent: unknown) => {
    if (typeof parent === 'string' && parent !== '') return { id: parent };
    const { id, queue } = (parent ?? {}) as { id?: unknown; queue?: unknown };
    if (typeof id !== 'string' || id === '') throw new ConfigurationError(`dependsOn takes Results or task ids, not ${String(parent)}`);
    return typeof queue === 'string' && queue !== DEFAULT_QUEUE ? { id, queue } : { id };
  });
}

/**
 * Race a run against its timeout. On time-out the run's signal is aborted so
 * a task that listens can stop; one that does not keeps running in the
 * background (its late outcome is ignored) until its worker is replaced.
 */
function withTimeout(running: Promise<unknown>, message: Message, abort: AbortController): Promise<unknown> {
  const error = new TaskTimeout(`task ${message.name} ${message.id} ran past its timeout of ${message.timeout}s`);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      abort.abort(error);
      reject(error);
    }, message.timeout! * 1000);
  });
  running.catch(() => {}); // a late failure after the timeout is not an unhandled rejection
  return Promise.race([running, timedOut]).finally(() => clearTimeout(timer));
}

const NEVER_ABORTED = new AbortController().signal;

/** One run's TaskContext; a class so its methods are shared, not made anew for every run. */
class RunContext implements TaskContext {
  readonly id: string;
  readonly name: string;
  readonly args: readonly unknown[];
  readonly retries: number;
  readonly retryDelay: number;
  readonly priority: number;
  readonly eta: Date | null;
  readonly expires: Date | null;
  readonly timeout: number | null;
  readonly queue: string;
  readonly headers: Readonly<Record<string, string>>;
  /** What changed on the record since the last write: the progress as JSON, the log lines. */
  private latestProgress?: string;
  private lines?: string[];
  private logChanged = false;
  private recordSent = -Infinity;
  private recordTimer?: NodeJS.Timeout;
  /** When the run's time is up (performance.now() ms), or Infinity. */
  private readonly deadline: number;

  constructor(
    private readonly message: Message,
    readonly huey: Huey,
    readonly signal: AbortSignal,
  ) {
    this.id = message.id;
    this.name = message.name;
    this.args = message.args;
    this.retries = message.retries;
    this.retryDelay = message.retryDelay;
    this.priority = message.priority;
    this.eta = message.eta === null ? null : new Date(message.eta);
    this.expires = message.expires === null ? null : new Date(message.expires);
    // 0, which old messages may carry, meant no limit.
    this.timeout = message.timeout || null;
    this.queue = message.queue ?? DEFAULT_QUEUE;
    this.headers = message.headers ?? NO_HEADERS;
    this.deadline = this.timeout === null ? Infinity : performance.now() + this.timeout * 1000;
  }

  timeRemaining(): number {
    return this.deadline === Infinity ? Infinity : Math.max(0, (this.deadline - performance.now()) / 1000);
  }

  checkTimeout(): void {
    if (this.signal.aborted || performance.now() >= this.deadline) {
      throw new TaskTimeout(`task ${this.name} ${this.id} ran past its timeout of ${this.timeout}s`);
    }
  }

  progress(value: unknown): void {
    const text = JSON.stringify(value);
    if (text === undefined) throw new TypeError('progress must be a number or a JSON value');
    if (text.length > MAX_PROGRESS_CHARS) throw new RangeError(`progress is ${text.length} characters of JSON, over the limit of ${MAX_PROGRESS_CHARS}`);
    this.latestProgress = text;
    this.writeSoon();
  }

  log(line: string): void {
    // Cut, then made storable: a cut can split a surrogate pair.
    (this.lines ??= []).push(storableText(String(line).slice(0, MAX_LOG_LINE_CHARS)));
    if (this.lines.length > MAX_LOG_LINES) this.lines.shift();
    this.logChanged = true;
    this.writeSoon();
  }

  /** Write what changed to the record now, or once RECORD_INTERVAL_MS has passed since the last write. */
  private writeSoon(): void {
    if (this.recordTimer) return;
    const send = () => {
      this.recordTimer = undefined;
      this.recordSent = performance.now();
      const fields: Record<string, string> = {};
      if (this.latestProgress !== undefined) fields.progress = this.latestProgress;
      if (this.logChanged) fields.log = JSON.stringify(this.lines);
      this.logChanged = false;
      void this.huey.writeRecord(this.message, fields);
    };
    const wait = this.recordSent + RECORD_INTERVAL_MS - performance.now();
    if (wait <= 0) send();
    else this.recordTimer = setTimeout(send, wait);
  }
}

/** The most characters of JSON a progress value may take. */
const MAX_PROGRESS_CHARS = 4096;
/** A task reporting progress or logging in a hot loop writes its record at most this often, in ms. */
const RECORD_INTERVAL_MS = 100;
/** The log lines a record keeps (the latest), and the most characters of each. */
const MAX_LOG_LINES = 50;
const MAX_LOG_LINE_CHARS = 1000;

export function contextOf(message: Message, huey: Huey, signal: AbortSignal = NEVER_ABORTED): TaskContext {
  return new RunContext(message, huey, signal);
}

const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});
