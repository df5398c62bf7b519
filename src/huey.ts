import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import type { DateTime } from 'luxon';
import {
  CancelExecution,
  ConfigurationError,
  RateLimitExceeded,
  DependencyError,
  HueyError,
  RetryTask,
  SerializationError,
  TaskError,
  TaskLockedError,
  TaskTimeout,
  toRemoteError,
  UnknownTaskError,
  type RemoteError,
} from './errors.js';
import { EnqueueCounter } from './enqueue-counter.js';
import { createTaskLock, lockKey, type TaskLock } from './lock.js';
import { createRateLimit, type RateLimit, type RateLimitOptions } from './rate-limit.js';
import { quietLogger, type Logger } from './logger.js';
import type { Message } from './message.js';
import { Result } from './result.js';
import { ResultGroup } from './result-group.js';
import { Chord, chordMemberOf, countIntoChord, Group, Pipeline, resultsOf, Signature } from './signature.js';
import { describeProblems, followUpProblems, withoutFollowUps } from './follow-ups.js';
import { JsonSerializer, type Serializer } from './serializer.js';
import { Signals, type SignalHandler, type SignalName } from './signals.js';
import { MemoryStorage } from './storage/memory.js';
import type { Claim, ClaimPeek, Storage } from './storage/storage.js';
import {
  contextOf,
  TaskDefinition,
  type ContextTaskFactory,
  type PeriodicSchedule,
  type ScheduleOptions,
  type PeriodicTaskFactory,
  type TaskArgs,
  type TaskContext,
  type TaskFactory,
  type TaskOptions,
  type TaskWrapper,
} from './task.js';
import { QueueRegistry, shardName, type QueueOptions } from './queues.js';
import { errorFields, recordFields, stateOf, statusOf, type TaskStatus } from './records.js';
import { releaseKey, takeKey } from './dedupe.js';
import { checkCallOptions, checkInstanceName, checkMessage, checkQueueName, DEFAULT_QUEUE, dueAt, etaOf, MAX_SECONDS } from './validate.js';

/** The hooks of a Huey that has none, without a copy per run. */
const NO_HOOKS: readonly never[] = [];

/** An already settled promise, returned where there is nothing to wait for. */
const NOTHING: Promise<void> = Promise.resolve();

export interface HueyOptions {
  /** Where messages, schedule and results live. Default: a MemoryStorage. */
  storage?: Storage;
  serializer?: Serializer;
  /** Run tasks in-process as soon as they are called (for tests and development). @defaultValue false */
  immediate?: boolean;
  /** Keep tasks' return values in the result store. @defaultValue true */
  results?: boolean;
  /** Keep `undefined` and `null` return values too (otherwise nothing is stored for them). @defaultValue false */
  storeNone?: boolean;
  /**
   * Store the error of every failed run, also one that will be retried, and
   * run its error handler each time, as Huey does by default: `get()` then
   * rejects with the latest failure while retries remain, and a retry's
   * success replaces it. Off, only a task's final failure is stored and
   * handled, so `get({ blocking: true })` waits for the outcome of the last try.
   * @defaultValue false
   */
  storeIntermediateErrors?: boolean;
  /**
   * Seconds a task's result is kept; unread results then vanish by
   * themselves, so a busy app's result store does not grow without bound
   * (like Huey's RedisExpireHuey). Default: kept until read.
   */
  resultTtl?: number;
  /**
   * Keep a record per task id (state, times, worker, error, progress) for
   * `huey.status(id)`, `result.status()` and the failed registry. Off by
   * default for now: on Redis each record costs a command per state change
   * and a key per task (measured: the drain a third slower). @defaultValue false
   */
  records?: boolean;
  /** Seconds a task's record is kept after its last change (its end, usually). @defaultValue 604800 (a week) */
  recordTtl?: number;
  /**
   * The largest serialized message, in bytes. A call over it fails at once;
   * a message over it found in the queue is dead-lettered unrun.
   * @defaultValue 1048576 (1 MiB)
   */
  maxPayloadSize?: number;
  logger?: Logger;
}

export interface RevokeOptions {
  /** Skip only the next run, then forget the flag. */
  revokeOnce?: boolean;
  /** Skip runs until this time, then the flag lapses by itself. */
  revokeUntil?: Date | DateTime;
}

/** What `result.reschedule()` may change; with neither `delay` nor `eta` the copy runs now. */
export interface RescheduleOptions {
  /** Seconds from now. */
  delay?: number;
  eta?: Date | DateTime;
  /** A Date, or seconds after the copy falls due. Default: the task's own expiry, counted anew. */
  expires?: number | Date;
  priority?: number;
}

/** How one execution ended, for the worker's log line. */
export type Outcome =
  | { status: 'complete' }
  | { status: 'failed' | 'retrying' | 'canceled' | 'locked'; error: unknown }
  | { status: 'revoked' | 'expired' }
  /** Reached a worker before its eta, and went back to the schedule unrun. */
  | { status: 'scheduled' }
  /** Waits, unrun, for tasks it depends on: back in the schedule to look again later. */
  | { status: 'deferred' };

/** How a worker runs a message it claimed in a batch; see `Huey.execute`. */
export interface ExecuteOptions {
  /** The message's two revocation flags (by id, by task), read beforehand with `readRevocationFlags`. */
  revocationFlags?: RevocationFlags;
  /**
   * Hand over the final storage step (the result and the ack) instead of
   * waiting for it, so the next run starts without waiting a round trip. The
   * claim counts as settled only once that promise resolves.
   */
  settleLater?: (settling: Promise<void>) => void;
  /** The storage the claim was taken from, where it is acked. Default: the message's own queue's. */
  storage?: Storage;
}

/**
 * A worker's claim on the message being run, the storage it came from,
 * whether it was acked yet, when the run started (with records on), and
 * whether the run's end was recorded yet (it rides on the final step).
 */
type Settle = { claim: Claim; storage: Storage; acked: boolean; started?: number; recorded?: boolean };

/** A parent that reached one of these will never complete: its dependents fail (or run, by option). */
const PARENT_ENDS: ReadonlySet<string> = new Set(['failed', 'canceled', 'revoked', 'expired', 'dead']);

/** A deferred task's first wait for its parents, growing by half each time up to the last, in ms. */
const DEFER_FIRST_MS = 100;
const DEFER_MAX_MS = 5000;

/** `message` back in the schedule, to look at the tasks it depends on again after its next wait. */
function deferredAgain(message: Message): Message {
  const deferrals = (message.deferrals ?? 0) + 1;
  return { ...message, deferrals, eta: Date.now() + Math.min(DEFER_FIRST_MS * 1.5 ** (deferrals - 1), DEFER_MAX_MS) };
}

/** The outcomes after which a task will not run again: its key (if any) is let go. */
const ENDS: ReadonlySet<Outcome['status']> = new Set(['complete', 'failed', 'locked', 'canceled', 'revoked', 'expired']);

/** A run to show as running if it lasts past the turn it started in. */
type RunMark = { message: Message; started: number; worker: string | undefined };

/** A message's revocation flags as stored: by its id, and by its task's name. */
export type RevocationFlags = readonly [byId: string | null, byTask: string | null];

/**
 * Called as a task is enqueued, in the producer, with the headers it will
 * carry to its run (`task.headers`): the place to inject trace context.
 */
export type EnqueueHook = (headers: Record<string, string>, task: { readonly id: string; readonly name: string }) => void;

export type Hook = (task: TaskContext) => void | Promise<void>;
export type PostHook = (task: TaskContext, value: unknown, error: unknown) => void | Promise<void>;
export type LifecycleHook = () => void | Promise<void>;

/** Stored in the result store under the task id. */
export type StoredOutcome<T> = { value: T } | { error: RemoteError };

const TASK_METADATA = 'huey:task';
const TASK_OPTIONS_METADATA = 'huey:task-options';

/** `r:<id>` revokes one call, `rt:<name>` every call of a task. */
const revokeKey = (id: string) => `r:${id}`;
const revokeTaskKey = (name: string) => `rt:${name}`;
/** `kv:<key>` holds what `huey.put` keeps, apart from task ids, flags and locks. */
const sharedKey = (key: string) => `kv:${key}`;

/** Each task handle's own function, name and `this`, for a Huey that wraps another Huey's task. */
const WRAPPED = new WeakMap<object, { fn: (...args: unknown[]) => unknown; name: string; thisArg?: () => unknown }>();
/** Set while the queue is paused (by `huey.pause()`), to when it was paused. */
const PAUSED_KEY = 'paused';
/** The largest message a failed task's record keeps for `requeue`, in characters. */
const MAX_KEPT_MESSAGE = 64 * 1024;
/** `paused` for the whole instance, `paused:<queue>` for one queue. */
const pausedKey = (queue?: string) => (queue === undefined ? PAUSED_KEY : `${PAUSED_KEY}:${checkQueueName(queue)}`);

/**
 * One application's task queue: its registry of tasks, its storage, and the
 * one place where a message is turned into a run of a function.
 */
export class Huey {
  readonly serializer: Serializer;
  readonly results: boolean;
  readonly storeNone: boolean;
  readonly storeIntermediateErrors: boolean;
  readonly maxPayloadSize: number;
  readonly resultTtl?: number;
  /** Whether a record is kept per task; see `status()`. */
  readonly records: boolean;
  /** Seconds a record is kept after its last change. */
  readonly recordTtl: number;
  logger: Logger;

  private readonly registry = new Map<string, TaskDefinition>();
  private readonly signals: Signals;
  private readonly preExecuteHooks: Hook[] = [];
  private readonly enqueueHooks: EnqueueHook[] = [];
  /** Enqueues by task name, added to the storage's totals once a second. */
  private readonly enqueueCounter = new EnqueueCounter(
    () => this.storage,
    (error) => this.logger.warn(`could not store the enqueue counts: ${errorText(error)}`),
  );
  private readonly postExecuteHooks: PostHook[] = [];
  readonly startupHooks: LifecycleHook[] = [];
  readonly shutdownHooks: LifecycleHook[] = [];
  /** Whether this process knows a task: follow-ups naming one it does not can never be enqueued. */
  private readonly isTask = (name: string): boolean => this.registry.has(name);
  /** Enqueues not yet written, so `close()` can wait for them before closing the storage under them. */
  private readonly enqueuesInFlight = new Set<Promise<unknown>>();
  private configuredStorage: Storage;
  private immediateStorage?: Storage;
  private immediateMode = false;
  /** The named queues this instance knows: declared, or named by its tasks. */
  private readonly queueRegistry = new QueueRegistry();

  constructor(
    readonly name: string,
    options: HueyOptions = {},
  ) {
    checkInstanceName(name);
    this.configuredStorage = options.storage ?? new MemoryStorage();
    this.serializer = options.serializer ?? new JsonSerializer();
    this.results = options.results ?? true;
    this.storeNone = options.storeNone ?? false;
    this.storeIntermediateErrors = options.storeIntermediateErrors ?? false;
    this.maxPayloadSize = options.maxPayloadSize ?? 1024 * 1024;
    this.resultTtl = options.resultTtl;
    this.records = options.records ?? false;
    this.recordTtl = options.recordTtl ?? 7 * 24 * 3600;
    if (!(this.recordTtl > 0 && this.recordTtl <= MAX_SECONDS)) throw new ConfigurationError(`recordTtl must be a number of seconds over 0, not ${String(options.recordTtl)}`);
    this.logger = options.logger ?? quietLogger;
    this.signals = new Signals((error, signal) => this.logger.error(`signal handler for "${signal}" failed: ${errorText(error)}`));
    this.immediate = options.immediate ?? false;
  }

  /** The storage in use: the configured one, or an in-memory one in immediate mode. */
  get storage(): Storage {
    return this.immediateMode ? (this.immediateStorage ??= new MemoryStorage()) : this.configuredStorage;
  }

  /**
   * In immediate mode a called task runs at once in this process, on an
   * in-memory storage, so tasks can be tested without a server or consumer.
   */
  get immediate(): boolean {
    return this.immediateMode;
  }

  set immediate(on: boolean) {
    this.immediateMode = on;
  }

  connect(): Promise<void> {
    return this.storage.connect();
  }

  // ---- queues ----

  /**
   * Declare a named queue, with its shards (`{ shards: 4 }` spreads a hot
   * queue over four slots of a Redis Cluster). A queue a task names needs no
   * declaration unless it has shards; declare it anyway to fix the order a
   * consumer without `-Q` serves the queues in.
   */
  queue(name: string, options: QueueOptions = {}): void {
    this.queueRegistry.declare(name, options);
  }

  /** Every queue this instance knows, the default queue first, then in the order declared or named by a task. */
  get queueNames(): string[] {
    return this.queueRegistry.names;
  }

  /** How many shards `queue` is spread over (1 for a queue not sharded, or not known). */
  shardCount(queue: string): number {
    return this.queueRegistry.shardCount(queue);
  }

  /**
   * The storage of shard `shard` of `queue`: the instance's own storage for
   * the default queue's first shard, otherwise the storage's `forQueue`.
   */
  storageFor(queue: string = DEFAULT_QUEUE, shard = 0): Storage {
    if (queue === DEFAULT_QUEUE && shard === 0) return this.storage;
    const storage = this.storage;
    if (!storage.forQueue) throw new ConfigurationError(`the ${storage.kind} storage has no named queues: queue "${queue}" cannot be used`);
    return storage.forQueue(shardName(queue, shard));
  }

  /** The storages of every shard of `queue`, first shard first. */
  queueStorages(queue: string = DEFAULT_QUEUE): Storage[] {
    return Array.from({ length: this.queueRegistry.shardCount(queue) }, (_, shard) => this.storageFor(queue, shard));
  }

  /** The storage of every shard of `queue` (of every queue this instance knows, when not given), with its queue's name. */
  queueSources(queue?: string): Array<{ readonly queue: string; readonly storage: Storage }> {
    return (queue === undefined ? this.queueNames : [queue]).flatMap((name) => this.queueStorages(name).map((storage) => ({ queue: name, storage })));
  }

  /** Where a task's messages and result live: its queue's storage (its shard's, by id). */
  storageOf(task: { readonly id: string; readonly queue?: string }): Storage {
    const queue = task.queue ?? DEFAULT_QUEUE;
    return this.storageFor(queue, this.queueRegistry.shardOf(queue, task.id));
  }

  /**
   * The storages a result with id `id` may be in: its queue's when known,
   * otherwise that of every queue this instance knows (default first).
   */
  resultStorages(id: string, queue?: string): Storage[] {
    if (queue !== undefined) return [this.storageOf({ id, queue })];
    return this.queueRegistry.names.map((name) => this.storageOf({ id, queue: name }));
  }

  /**
   * Wait for every enqueue still being written (a task's call form returns
   * before its write is done), then store the enqueue counts and close the
   * storage.
   */
  async close(): Promise<void> {
    // An enqueue may start while we wait (a signal handler's), hence the loop.
    while (this.enqueuesInFlight.size > 0) await Promise.allSettled([...this.enqueuesInFlight]);
    await this.enqueueCounter.flush().catch((error: unknown) => this.logger.warn(`could not store the enqueue counts: ${errorText(error)}`));
    // Both storages: the configured one may have been connected before immediate
    // mode was switched on (or after it was switched off), and an open connection
    // would keep the process from exiting. Closing one never connected is a no-op.
    const storages = new Set<Storage>([this.configuredStorage, ...(this.immediateStorage ? [this.immediateStorage] : [])]);
    await Promise.all([...storages].map((storage) => storage.close()));
  }

  // ---- defining tasks ----

  /**
   * Define a task. As a wrapper it returns the task handle:
   * `export const add = huey.task()(function add(a: number, b: number) { return a + b; })`.
   * As a decorator on a class method it registers the method and leaves it
   * callable as before; `huey.taskOf(Class.method)` gives its typed handle.
   */
  task(options: TaskOptions & { context: true }): ContextTaskFactory;
  task(options?: TaskOptions): TaskFactory;
  task(options: TaskOptions = {}): TaskFactory | ContextTaskFactory {
    return this.taskFactory(options);
  }

  /**
   * Define a task that the consumer enqueues by itself in every minute that
   * `schedule` accepts: `huey.periodicTask(crontab({ minute: '0', hour: '3' }))`.
   * Periodic tasks take no arguments (but the TaskContext with `context: true`),
   * and, as in Huey, their return values are not stored.
   */
  periodicTask(schedule: PeriodicSchedule, options: TaskOptions & { context: true }): PeriodicTaskFactory<[TaskContext]>;
  periodicTask(schedule: PeriodicSchedule, options?: TaskOptions): PeriodicTaskFactory<[]>;
  periodicTask(schedule: PeriodicSchedule, options: TaskOptions = {}): PeriodicTaskFactory<[]> | PeriodicTaskFactory<[TaskContext]> {
    if (typeof schedule !== 'function') throw new ConfigurationError('periodicTask() needs a schedule: crontab({...}) or a (minute) => boolean function');
    return this.taskFactory(options, schedule) as PeriodicTaskFactory<[]>;
  }

  /** Registered periodic tasks. */
  periodicTasks(): TaskDefinition[] {
    return [...this.registry.values()].filter((definition) => definition.periodic);
  }

  private taskFactory(options: TaskOptions, periodic?: PeriodicSchedule): TaskFactory {
    const factory = (...params: unknown[]): any => {
      if (params.length === 1) {
        const fn = params[0];
        if (typeof fn !== 'function') throw new ConfigurationError('huey.task()(fn) expects a function');
        // A task of another Huey is wrapped anew from its own function, as Huey does, not as a function that enqueues there.
        const wrapped = WRAPPED.get(fn);
        if (wrapped) return this.register(wrapped.fn, options, options.name ?? wrapped.name, wrapped.thisArg, periodic);
        return this.register(fn as (...args: unknown[]) => unknown, options, options.name ?? fn.name, undefined, periodic);
      }
      const [target, key, descriptor] = params as [object, string | symbol, PropertyDescriptor];
      const isStatic = typeof target === 'function';
      const owner = isStatic ? (target as { name: string }) : (target.constructor as { name: string });
      let instance: unknown;
      const thisArg = isStatic
        ? () => target
        : () => (instance ??= new (target.constructor as new () => unknown)());
      Reflect.defineMetadata(TASK_OPTIONS_METADATA, options, target, key);
      this.register(descriptor.value, options, options.name ?? `${owner.name}.${String(key)}`, thisArg, periodic);
    };
    return factory as TaskFactory;
  }

  /** The typed handle of a task defined with the `@huey.task()` decorator. */
  taskOf<F extends (...args: any[]) => any>(method: F): TaskWrapper<TaskArgs<F>, Awaited<ReturnType<F>>> {
    const wrapper = Reflect.getMetadata(TASK_METADATA, method) as TaskWrapper<TaskArgs<F>, Awaited<ReturnType<F>>> | undefined;
    if (!wrapper || !this.registry.has(wrapper.taskName)) {
      throw new ConfigurationError(`${method.name || 'this function'} is not a task of huey "${this.name}"`);
    }
    return wrapper;
  }

  /** The options a class method was decorated with, read back from its metadata. */
  static taskOptions(target: object, key: string | symbol): TaskOptions | undefined {
    return Reflect.getMetadata(TASK_OPTIONS_METADATA, target, key) as TaskOptions | undefined;
  }

  private register(
    fn: (...args: unknown[]) => unknown,
    options: TaskOptions,
    name: string,
    thisArg?: () => unknown,
    periodic?: PeriodicSchedule,
  ): TaskWrapper<unknown[], unknown> {
    if (!name) throw new ConfigurationError('a task needs a name: pass a named function or { name }');
    if (this.registry.has(name)) throw new ConfigurationError(`a task named "${name}" is already registered`);
    const definition = new TaskDefinition(name, fn, options, thisArg, periodic);
    this.registry.set(name, definition);
    if (options.queue !== undefined) this.queueRegistry.note(options.queue);
    const wrapper = this.wrap(definition);
    Reflect.defineMetadata(TASK_METADATA, wrapper, fn);
    WRAPPED.set(wrapper, { fn, name, thisArg });
    return wrapper;
  }

  private wrap(definition: TaskDefinition): TaskWrapper<unknown[], unknown> {
    const call = (args: unknown[], overrides: Partial<ScheduleOptions<unknown[]>> = {}, awaited = false, scheduled = false) => {
      const unstamped = definition.message(overrides.id ?? randomUUID(), args, overrides);
      // As in Huey, schedule() is for later: without a time it is refused (after the other options are checked).
      if (scheduled && overrides.delay === undefined && overrides.eta === undefined) {
        throw new ConfigurationError(`schedule() of task "${definition.name}" needs a delay (seconds) or an eta (Date or DateTime); to run now, call the task or pass delay: 0`);
      }
      const message = this.stamp(unstamped);
      const data = this.serializeMessage(message);
      const enqueued = this.enqueueCall(message, data, overrides.dependsOn);
      const result = new Result<unknown>(this, message.id, enqueued, message);
      if (!awaited) {
        // A caller who may never look at `result.enqueued` still hears of a failure, from the log
        // rather than as an unhandled rejection that would end the process.
        enqueued.catch((error) => this.logger.error(`enqueue of ${message.name} ${message.id} failed: ${errorText(error)}`));
        result.enqueued.catch(() => {});
      }
      return result;
    };
    const wrapper = (...args: unknown[]) => call(args);
    return Object.assign(wrapper, {
      taskName: definition.name,
      options: definition.options,
      schedule: (options: ScheduleOptions<unknown[]>) => call(options.args ?? [], options, false, true),
      enqueue: (...args: unknown[]) => call(args, {}, true).enqueued,
      callLocal: (...args: unknown[]) => {
        const message = definition.message(randomUUID(), args);
        return definition.invoke(message, contextOf(message, this));
      },
      s: (...args: unknown[]) => new Signature<unknown>(this, definition.name, args),
      revoke: (options?: RevokeOptions) => this.revokeTask(definition.name, options),
      restore: () => this.restoreTask(definition.name),
      isRevoked: () => this.isTaskRevoked(definition.name),
      map: (items: Iterable<unknown[]>) => {
        const calls = [...items].map((args) => (Array.isArray(args) ? args : [args]));
        // Keyed calls each take or join their key: one by one.
        if (definition.options.key) {
          const results = calls.map((args) => call(args));
          return new ResultGroup(results, Promise.all(results.map((result) => result.enqueued)));
        }
        return this.enqueueAll(calls.map((args) => definition.message(randomUUID(), args)));
      },
    });
  }

  /**
   * Serialize every message first (so a bad argument fails the whole batch
   * before anything is written), then write them in one round trip.
   */
  private enqueueAll(messages: Message[], handles: Message[] = messages): ResultGroup<unknown[]> {
    const keyed = messages.find((message) => message.dedupe);
    if (keyed) throw new ConfigurationError(`task ${keyed.name} has a key: a key deduplicates calls enqueued alone, not the steps of a pipeline or the members of a group`);
    const items = messages.map((unstamped) => {
      const message = this.stamp(unstamped);
      return { message, data: this.serializeMessage(message) };
    });
    // Heads that depend on other tasks: those are checked first, and nothing is written if one is unknown.
    const dependents = items.filter(({ message }) => message.dependsOn);
    const earlier = [...this.enqueuesInFlight];
    const written =
      dependents.length === 0
        ? this.writeAll(items)
        : (async () => {
            for (const { message } of dependents) await this.checkParents(message, message.dependsOn!.map((parent) => parent.id), earlier);
            await this.writeAll(items);
          })();
    const enqueued = this.track(written);
    enqueued.catch((error) => this.logger.error(`enqueue of ${messages.length} task(s) failed: ${errorText(error)}`));
    const group = resultsOf(this, handles, enqueued);
    // Logged above; the handles' own promises must not end the process as unhandled rejections.
    group.enqueued.catch(() => {});
    for (const result of group.results) result.enqueued.catch(() => {});
    return group;
  }

  /** Write serialized messages: in one round trip, unless some are for later or run here. */
  private async writeAll(items: Array<{ message: Message; data: string }>): Promise<void> {
    const now = Date.now();
    const ready = items.filter(({ message }) => message.eta === null || message.eta <= now);
    if (this.immediateMode || ready.length < items.length) {
      for (const { message, data } of items) await this.enqueueSerialized(message, data);
      return;
    }
    // One round trip per queue (shard) the messages go to: usually one.
    const byStorage = new Map<Storage, Array<{ data: string; priority: number }>>();
    for (const { message, data } of items) {
      const storage = this.storageOf(message);
      const batch = byStorage.get(storage);
      if (batch) batch.push({ data, priority: message.priority });
      else byStorage.set(storage, [{ data, priority: message.priority }]);
    }
    // Sent in the same turn as the enqueue, so they share its round trip.
    const recorded = this.records ? items.map(({ message }) => this.writeRecord(message, { state: 'enqueued', created: now, enqueued: now }, 0, true)) : [];
    for (const [storage, batch] of byStorage) await storage.enqueueMany(batch);
    await Promise.all(recorded);
    for (const { message } of items) this.enqueueCounter.count(message.name);
    // A bulk enqueue of 10,000 would otherwise wait on 10,000 signals no one hears.
    if (this.signals.hears('enqueued')) for (const { message } of items) await this.emit('enqueued', message);
  }

  /** Every registered task name. */
  get taskNames(): string[] {
    return [...this.registry.keys()];
  }

  definition(name: string): TaskDefinition | undefined {
    return this.registry.get(name);
  }

  // ---- enqueueing ----

  /** A message as the storage keeps it; throws `SerializationError` for what cannot be sent. */
  serializeMessage(message: Message): string {
    let data: string;
    try {
      data = this.serializer.serialize(message);
    } catch (error) {
      if (error instanceof SerializationError) {
        throw new SerializationError(`cannot enqueue task "${message.name}": ${error.message}`);
      }
      throw error;
    }
    const size = this.payloadSize(data);
    if (size > this.maxPayloadSize) {
      throw new SerializationError(`cannot enqueue task "${message.name}": its message is ${size} bytes, over the limit of ${this.maxPayloadSize} (the maxPayloadSize option)`);
    }
    return data;
  }

  /** The size in bytes of a serialized message, as the storage keeps it. */
  payloadSize(data: string): number {
    // Most payloads are ASCII; only count bytes exactly when a string could be near the limit.
    return data.length * 3 <= this.maxPayloadSize ? data.length : Buffer.byteLength(data);
  }

  /**
   * Enqueue a pipeline or a group (a chord too), returning the handles of all
   * its tasks: a pipeline's steps in order, a group's members then the chord's callback.
   */
  enqueue<R>(work: Signature<R>): Result<R>;
  enqueue<Rs extends unknown[]>(work: Pipeline<Rs>): ResultGroup<Rs>;
  enqueue<Rs extends unknown[], R, Cs extends unknown[]>(work: Chord<Rs, R, Cs>): ResultGroup<[...Rs, ...Cs]>;
  enqueue<Rs extends unknown[]>(work: Group<Rs>): ResultGroup<Rs>;
  /** Put a message in the queue, or in the schedule when it has a future eta. */
  enqueue(message: Message): Promise<void>;
  enqueue(work: any): any {
    if (work instanceof Signature) {
      const message = this.stamp(work.message());
      const enqueued = this.enqueueCall(message, this.serializeMessage(message), work.options.dependsOn);
      enqueued.catch((error) => this.logger.error(`enqueue of ${message.name} ${message.id} failed: ${errorText(error)}`));
      const result = new Result<unknown>(this, message.id, enqueued, message);
      result.enqueued.catch(() => {});
      return result;
    }
    if (work instanceof Pipeline || work instanceof Group || work instanceof Chord) {
      const { heads, handles } = work.build();
      return this.enqueueAll(heads, handles);
    }
    const message = this.stamp(work);
    return this.enqueueSerialized(message, this.serializeMessage(message));
  }

  /** Keep `enqueue` in the in-flight set until it settles, for `close()`. */
  private track<T>(enqueue: Promise<T>): Promise<T> {
    this.enqueuesInFlight.add(enqueue);
    const done = () => void this.enqueuesInFlight.delete(enqueue);
    enqueue.then(done, done);
    return enqueue;
  }

  private enqueueSerialized(message: Message, data: string, retry = false): Promise<void> {
    return this.track(this.write(message, data, retry));
  }

  /**
   * Enqueue one call: after checking the tasks it depends on (whose handles
   * may still be on their way), and taking or joining its key. Resolves to
   * the id of the call it joined, if it joined one.
   */
  private enqueueCall(message: Message, data: string, parents?: ReadonlyArray<Result<unknown> | string>): Promise<string | undefined | void> {
    if (message.dependsOn) {
      // The enqueues already under way: a parent among them is waited for (never this one itself).
      const earlier = [...this.enqueuesInFlight];
      return this.track(
        (async () => {
          const checked = await this.checkParents(message, parents ?? message.dependsOn!.map((parent) => parent.id), earlier);
          return checked.dedupe ? this.enqueueKeyed(checked, this.serializeMessage(checked)) : this.enqueueSerialized(checked, this.serializeMessage(checked));
        })(),
      );
    }
    return message.dedupe ? this.enqueueKeyed(message, data) : this.enqueueSerialized(message, data);
  }

  /**
   * Enqueue a call with a key, unless another call holds the key: then it
   * resolves to that call's id, which its Result takes on (see dedupe.ts).
   * A call whose enqueue fails lets its key go.
   */
  private enqueueKeyed(message: Message, data: string): Promise<string | undefined> {
    return this.track(
      (async () => {
        const taken = await takeKey(this, message, data, (replacement) => this.write(replacement, this.serializeMessage(replacement)));
        if (taken.kind !== 'own') return taken.id;
        try {
          await this.write(message, data);
        } catch (error) {
          await releaseKey(this, message).catch(() => {});
          throw error;
        }
        return undefined;
      })(),
    );
  }

  /** Let a keyed task's key go once it has ended; best effort (a `keyTtl` covers what this misses). */
  async endKeyed(message: Message): Promise<void> {
    if (!message.dedupe || this.keysReleased.has(message)) return;
    this.keysReleased.add(message);
    await releaseKey(this, message).catch((error: unknown) => this.logger.error(`could not release the key of ${message.name} ${message.id}: ${errorText(error)}`));
  }

  /** Runs whose key was let go before their result was stored, so that a caller who read the result and calls again gets a new run. */
  private readonly keysReleased = new WeakSet<Message>();

  /** Write a message to its queue, or its schedule, with its record in the same turn. A retry keeps its record's `created`. */
  private async write(message: Message, data: string, retry = false): Promise<void> {
    const now = Date.now();
    const created = retry ? undefined : now;
    if (message.eta !== null && message.eta > now) {
      const recorded = retry ? NOTHING : this.writeRecord(message, { state: 'scheduled', created, eta: message.eta }, message.eta - now, true);
      await this.storageOf(message).addToSchedule(data, message.eta, message.priority);
      await recorded;
      this.enqueueCounter.count(message.name);
      await this.emit('scheduled', message);
    } else if (this.immediateMode) {
      await this.writeRecord(message, { state: 'enqueued', created, enqueued: now }, 0, true);
      await this.emit('enqueued', message);
      await this.execute(this.deserializeMessage(data));
    } else {
      const recorded = this.writeRecord(message, { state: retry ? 'retrying' : 'enqueued', created, enqueued: now }, 0, true);
      await this.storageOf(message).enqueue(data, message.priority);
      await recorded;
      this.enqueueCounter.count(message.name);
      await this.emit('enqueued', message);
    }
  }

  // ---- records ----

  /**
   * Merge `fields` into the record of `message`'s task, kept `recordTtl`
   * seconds (plus `extraMs`, the wait of a task due later). Best effort: a
   * record that cannot be written is logged, never a reason to fail the
   * task, and never an unhandled rejection. Sent at once, so that a write
   * made in the same turn as a storage step shares its round trip.
   */
  writeRecord(message: Message, fields: Record<string, string | number | null | undefined>, extraMs = 0, identity = false): Promise<void> {
    if (!this.records) return NOTHING;
    const written = this.storageOf(message).writeRecord(message.id, recordFields(message, fields, identity), this.recordTtl * 1000 + Math.max(0, extraMs));
    // Writes that ride on one step share its promise: one handler for them all, not one per task.
    if (written !== this.recordWrite.written) {
      this.recordWrite.written = written;
      this.recordWrite.handled = written.catch((error: unknown) => this.logger.debug(`could not write task records: ${errorText(error)}`));
    }
    return this.recordWrite.handled;
  }

  /** The latest record write's promise, and the same with its failure logged; see `writeRecord`. */
  private recordWrite: { written?: Promise<void>; handled: Promise<void> } = { handled: NOTHING };

  /**
   * Show a run as running once it has lasted past the current turn of the
   * event loop: most runs end sooner, and their end, carried by their final
   * step, is all their record needs.
   */
  private markRunning(message: Message, started: number, worker: string | undefined): RunMark {
    const mark = { message, started, worker };
    this.runsToMark.add(mark);
    this.runsMarking ??= setImmediate(() => {
      this.runsMarking = undefined;
      for (const { message, started, worker } of this.runsToMark) void this.writeRecord(message, { state: 'running', started, worker });
      this.runsToMark.clear();
    });
    return mark;
  }

  /** Runs started this turn, to be shown as running if still going at its end; see `markRunning`. */
  private readonly runsToMark = new Set<RunMark>();
  private runsMarking?: NodeJS.Immediate;

  /** Record how a run ended (or, for `scheduled`, that it went back to wait). */
  recordOutcome(message: Message, outcome: Outcome, details: { started?: number; worker?: string } = {}): Promise<void> {
    if (!this.records) return NOTHING;
    const now = Date.now();
    const state = stateOf(outcome);
    // A retry (or a wait for the tasks it depends on) wrote its record as it was enqueued; its next run may already have written its own.
    if (state === 'retrying' || state === 'deferred') return NOTHING;
    const failure = 'error' in outcome && outcome.error !== undefined ? errorFields(outcome.error) : {};
    const waits = state === 'scheduled';
    // A task that failed for good keeps its message, so that `requeue` can run it again.
    const kept = state === 'failed' ? this.keptMessage(message) : undefined;
    return this.writeRecord(message, { state, ended: waits ? undefined : now, started: details.started, worker: details.worker, message: kept, ...failure }, waits && message.eta ? message.eta - now : 0);
  }

  /** The message as a failed task's record keeps it, or undefined when it is too large to keep there. */
  private keptMessage(message: Message): string | undefined {
    try {
      const data = this.serializeMessage(message);
      return data.length <= MAX_KEPT_MESSAGE ? data : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Run again a task that failed for good, from its record (RQ's requeue of
   * the failed registry): enqueued now with its id, so its record and result
   * are replaced by the new run's. Resolves to false when its record is gone,
   * is not failed, or kept no message (over 64 KiB).
   */
  async requeue(id: string, options: { queue?: string } = {}): Promise<boolean> {
    if (options.queue !== undefined) checkQueueName(options.queue);
    for (const storage of this.resultStorages(id, options.queue)) {
      const fields = await storage.readRecord(id);
      if (!fields) continue;
      if (fields.state !== 'failed' || fields.message === undefined) return false;
      const message = this.deserializeMessage(fields.message);
      await this.enqueue({ ...message, eta: null });
      return true;
    }
    return false;
  }

  /**
   * Where the tasks `message` depends on stand, from their records: the
   * first still on its way (`waiting`), or the first that ended without
   * completing (`failed`, and why), or neither when all completed.
   */
  private async parentsOf(message: Message): Promise<{ waiting?: string; failed?: { id: string; why: string } }> {
    const statuses = await Promise.all(message.dependsOn!.map((parent) => this.status(parent.id, { queue: parent.queue ?? DEFAULT_QUEUE })));
    let waiting: string | undefined;
    for (const [i, status] of statuses.entries()) {
      const id = message.dependsOn![i]!.id;
      if (!status) return { failed: { id, why: 'has no record (its record lapsed, or it was never enqueued here)' } };
      if (status.state === 'complete') continue;
      if (PARENT_ENDS.has(status.state)) return { failed: { id, why: `ended ${status.state}${status.error ? ` (${status.error.name}: ${status.error.message})` : ''}` } };
      waiting ??= id;
    }
    return waiting === undefined ? {} : { waiting };
  }

  /**
   * Check, before a dependent is enqueued, that every task it depends on is
   * one this instance has a record of: a typo'd id would otherwise wait for
   * nothing, then fail. Results are awaited first (a parent enqueued in the
   * same breath), and a parent that joined another by its key is named by
   * that one's id.
   */
  private async checkParents(message: Message, parents: ReadonlyArray<Result<unknown> | string>, earlier: ReadonlyArray<Promise<unknown>>): Promise<Message> {
    if (!this.records) throw new ConfigurationError(`task ${message.name}: dependsOn needs task records (records: true): they say when a task it depends on has completed`);
    const settled = await Promise.all(parents.map(async (parent) => (typeof parent === 'string' ? parent : (await parent.enqueued).id)));
    const dependsOn = message.dependsOn!.map((parent, i) => ({ ...parent, id: settled[i]! }));
    const known = (parent: { id: string; queue?: string }) => this.status(parent.id, { queue: parent.queue ?? DEFAULT_QUEUE });
    for (const parent of dependsOn) {
      // A parent this process enqueued just before (a group's members, an id taken from a handle
      // not awaited) may still be on its way: its record is looked for again once those landed.
      if (!(await known(parent)) && !(earlier.length > 0 && (await Promise.allSettled(earlier)) && (await known(parent)))) {
        throw new HueyError(`task ${message.name} cannot depend on task ${parent.id}: this instance has no record of it${parent.queue ? ` on queue ${parent.queue}` : ''}`);
      }
    }
    return { ...message, dependsOn };
  }

  /**
   * The failed registry (RQ's): tasks that failed for good, the latest to end
   * first, at most `limit` (100), of one queue or every queue, of one task
   * name if given, for as long as their records are kept.
   */
  async failed(options: { limit?: number; queue?: string; task?: string } = {}): Promise<TaskStatus[]> {
    const { limit = 100, queue, task } = options;
    if (queue !== undefined) checkQueueName(queue);
    const statuses: TaskStatus[] = [];
    for (const source of this.queueSources(queue)) {
      for (const id of await source.storage.failedRecords(limit)) {
        const fields = await source.storage.readRecord(id);
        if (!fields) continue;
        const status = statusOf(id, fields);
        if (status.state === 'failed' && (task === undefined || status.name === task)) statuses.push(status);
      }
    }
    return statuses.sort((a, b) => (b.ended?.getTime() ?? 0) - (a.ended?.getTime() ?? 0)).slice(0, limit);
  }

  /** How many tasks of `queue` (of every queue) the failed registry lists. */
  async failedCount(queue?: string): Promise<number> {
    if (queue !== undefined) checkQueueName(queue);
    const counts = await Promise.all(this.queueSources(queue).map((source) => source.storage.failedCount()));
    return counts.reduce((a, b) => a + b, 0);
  }

  /**
   * The record of task `id`: its state, times, worker, error and progress;
   * null for an id this instance has no record of (never enqueued, or its
   * record lapsed, or `records: false`). Looks in `queue` when given,
   * otherwise in every queue this instance knows.
   */
  async status(id: string, options: { queue?: string } = {}): Promise<TaskStatus | null> {
    if (options.queue !== undefined) checkQueueName(options.queue);
    for (const storage of this.resultStorages(id, options.queue)) {
      const fields = await storage.readRecord(id);
      if (fields) return statusOf(id, fields);
    }
    return null;
  }

  /**
   * Read a message back. A payload that is not one, or has a field of the
   * wrong shape (an eta that is no time, retries that are not a count),
   * throws `SerializationError` naming the field: run as it is, such a
   * message would run at the wrong time or loop.
   */
  deserializeMessage(data: string): Message {
    return checkMessage(this.serializer.deserialize(data));
  }

  // ---- executing ----

  /**
   * Run one message: the heart of the queue. Checks expiry and revocation,
   * runs hooks and the task, stores the result, and re-enqueues a retry.
   * Given the worker's `claim`, it also acks it once the run is settled
   * (with the result, in one storage step, when nothing else must be
   * enqueued first). Throws only for a message this process cannot run (an
   * unknown task) or a storage failure, and then leaves the claim unacked.
   * Everything else is settled here, once: a follow-up (next step, error
   * handler, chord callback) that cannot be enqueued is the run's own
   * failure, never a reason to leave the claim to be run again.
   */
  async execute(message: Message, now = Date.now(), claim?: Claim, options: ExecuteOptions = {}): Promise<Outcome> {
    // Only records need the start: a run without them reads no extra clock.
    const started = this.records ? Date.now() : undefined;
    const settle: Settle | undefined = claim ? { claim, storage: options.storage ?? this.storageOf(message), acked: false, started } : undefined;
    let outcome: Outcome;
    try {
      outcome = await this.run(message, now, settle, options);
    } catch (error) {
      // Data that cannot be written or read (not a storage failure: the storage
      // throws StorageError) would fail the same way on every run: settle it now.
      if (!(error instanceof SerializationError) || settle?.acked) throw error;
      outcome = await this.failUnrunnable(message, error);
    }
    // Written before the final step, so that the step carries it.
    if (!settle?.recorded) void this.recordOutcome(message, outcome, { started, worker: claim?.workerId });
    if (settle && !settle.acked) await this.settle(settle.storage.ack(settle.claim), options);
    if (message.dedupe && ENDS.has(outcome.status)) await this.endKeyed(message);
    return outcome;
  }

  /** Fail a message for good, with no retry: running it again would meet the same `error`. */
  private async failUnrunnable(message: Message, error: SerializationError): Promise<Outcome> {
    this.logger.error(`${message.name} ${message.id} cannot be settled as usual, failing it for good: ${errorText(error)}`);
    try {
      return await this.fail({ ...message, retries: 0 }, error);
    } catch (again) {
      if (!(again instanceof SerializationError)) throw again;
      // Even its follow-ups cannot be handled: store the error alone.
      if (this.results) await this.storeOutcome(message, { error: toRemoteError(error, { ...message, retries: 0 }) });
      return { status: 'failed', error };
    }
  }

  /** Wait for a final storage step, or hand it to the caller that asked to wait for it later. */
  private async settle(settling: Promise<void>, options: ExecuteOptions): Promise<void> {
    if (options.settleLater) options.settleLater(settling);
    else await settling;
  }

  private async run(message: Message, now: number, settle: Settle | undefined, options: ExecuteOptions): Promise<Outcome> {
    const definition = this.registry.get(message.name);
    if (!definition) throw new UnknownTaskError(message.name);
    // Only a run with a timeout can be aborted; the others share a signal that never fires.
    const abort = message.timeout ? new AbortController() : undefined;
    const context = contextOf(message, this, abort?.signal);

    if (!this.readyToRun(message, now)) {
      // As in Huey: a message in the queue before its time (written there by
      // hand, or by a producer whose clock runs ahead) waits in the schedule.
      await this.storageOf(message).addToSchedule(this.serializeMessage(message), message.eta!, message.priority);
      await this.emit('scheduled', message, undefined, context);
      return { status: 'scheduled' };
    }
    if (message.expires !== null && now > message.expires) {
      await this.emit('expired', message, undefined, context);
      await this.abortChordMember(message);
      return { status: 'expired' };
    }
    if (await this.isRevokedMessage(message, now, options.revocationFlags)) {
      await this.emit('revoked', message, undefined, context);
      await this.abortChordMember(message);
      return { status: 'revoked' };
    }
    if (message.dependsOn && message.dependsOn.length > 0) {
      const parents = await this.parentsOf(message);
      if (parents.waiting) {
        await this.emit('deferred', message, undefined, context);
        await this.enqueueRetry(deferredAgain(message), settle, undefined, { state: 'deferred', waitingOn: parents.waiting });
        return { status: 'deferred' };
      }
      if (parents.failed && !message.runOnParentFailure) {
        const error = new DependencyError(`task ${message.name} was not run: the task it depends on, ${parents.failed.id}, ${parents.failed.why}`);
        return this.fail({ ...message, retries: 0 }, error, context, settle);
      }
      // It runs now: from here its consumer's death counts as a failed run (the worker left the mark to this point).
      settle?.storage.markStarted(settle.claim);
    }
    const problems = followUpProblems(message, this.isTask);
    if (problems.length > 0) {
      // Its follow-ups could never be enqueued, on this run or any other: fail it unrun, for good.
      const error = new SerializationError(`task ${message.name} was not run: ${describeProblems(problems)}`);
      return this.fail({ ...withoutFollowUps(message, problems), retries: 0 }, error, context);
    }

    // As in Huey, a failing hook is logged and the others still run; only CancelExecution stops the run.
    // A copy (only when there are hooks: this is every run's path): a hook may unregister itself as it runs.
    for (const hook of this.preExecuteHooks.length > 0 ? [...this.preExecuteHooks] : NO_HOOKS) {
      try {
        await hook(context);
      } catch (error) {
        // Canceled before it ran: in a chord it counts as null, as a revoked member does. As in
        // Huey a hook's cancel is for good, unless it asks for a retry outright (which Huey ignores).
        if (error instanceof CancelExecution) return this.cancel(message, context, error, { value: null, retry: error.retry === true }, settle);
        this.logger.error(`pre-execute hook failed for ${message.name} ${message.id}: ${errorText(error)}`);
      }
    }

    await this.emit('executing', message, undefined, context);
    let value: unknown;
    let failure: unknown;
    let failed = false;
    const running = this.records ? this.markRunning(message, settle?.started ?? Date.now(), settle?.claim.workerId) : undefined;
    try {
      value = await definition.invoke(message, context, abort);
    } catch (error) {
      if (running) this.runsToMark.delete(running);
      if (error instanceof RetryTask) return this.retryWithoutCount(message, context, error, settle);
      if (error instanceof RateLimitExceeded && error.retry) return this.retryWithoutCount(message, context, error, settle);
      if (error instanceof CancelExecution) return this.cancel(message, context, error, undefined, settle);
      failed = true;
      failure = error;
    }
    if (running) this.runsToMark.delete(running);

    // A pipeline's next step is written down before the value is stored: one that
    // cannot be enqueued (the value over maxPayloadSize, or not serializable) fails this run.
    let next: { message: Message; data: string } | undefined;
    if (!failed && message.onComplete) {
      try {
        next = this.prepareFollowUp(message.onComplete, value);
      } catch (error) {
        failed = true;
        failure = new SerializationError(
          `task ${message.name} returned a value that cannot be passed on to its next step "${message.onComplete.name}": ${error instanceof Error ? error.message : String(error)}`,
        );
      }
    }

    if (!failed && this.results && !definition.periodic && (value != null || this.storeNone)) {
      try {
        // The ack may ride along with the result unless a follower must be enqueued before it.
        const ackNow = settle && !message.onComplete && !message.chord;
        const data = this.serializer.serialize({ value });
        // Let the key go before the result shows: whoever reads it and calls again gets a new run.
        if (message.dedupe) await this.endKeyed(message);
        if (ackNow) {
          settle.acked = true;
          // The run's end rides on the step with its result and ack.
          settle.recorded = true;
          void this.recordOutcome(message, { status: 'complete' }, { started: settle.started, worker: settle.claim.workerId });
          await this.settle(this.putOutcome(message, data, settle), options);
        } else {
          await this.putOutcome(message, data);
        }
      } catch (error) {
        if (!(error instanceof SerializationError)) throw error;
        failed = true;
        failure = new SerializationError(`task ${message.name} returned a value that cannot be stored: ${error.message}`);
      }
    }

    for (const hook of this.postExecuteHooks.length > 0 ? [...this.postExecuteHooks] : NO_HOOKS) {
      try {
        await hook(context, failed ? undefined : value, failed ? failure : undefined);
      } catch (error) {
        this.logger.error(`post-execute hook failed for ${message.name} ${message.id}: ${errorText(error)}`);
      }
    }

    if (!failed) {
      await this.emit('complete', message, undefined, context);
      if (next) await this.enqueueSerialized(next.message, next.data);
      // Only a member's last step carries its chord membership; the steps before hand on to the next.
      if (message.chord && !message.onComplete) await countIntoChord(this, message, { value });
      return { status: 'complete' };
    }
    return this.fail(message, failure, context, settle);
  }

  /**
   * A follow-up with `last` appended to its arguments, stamped and serialized,
   * ready to enqueue. Touches no storage: what it throws (SerializationError,
   * over maxPayloadSize) is about the data, and the same on every try.
   */
  private prepareFollowUp(followUp: Message, last: unknown): { message: Message; data: string } {
    const message = this.stamp({ ...followUp, args: [...followUp.args, last] });
    return { message, data: this.serializeMessage(message) };
  }

  /**
   * Settle a run that failed with `error`: signal it, then enqueue a retry if
   * any are left, or store the error as the task's result. The consumer also
   * calls this for a run whose worker died or was stopped for its timeout.
   */
  async fail(message: Message, error: unknown, context: TaskContext = contextOf(message, this), settle?: Settle): Promise<Outcome> {
    const signal = error instanceof TaskLockedError ? 'locked' : error instanceof TaskTimeout ? 'timeout' : error instanceof RateLimitExceeded ? 'rate-limited' : 'error';
    await this.emit(signal, message, error, context);
    if (message.retries > 0) {
      if (this.storeIntermediateErrors) await this.surfaceError(message, error);
      await this.retry(message, context, error, settle);
      return { status: 'retrying', error };
    }
    await this.settleFailure(message, error);
    return { status: signal === 'locked' ? 'locked' : 'failed', error };
  }

  /**
   * The end of a task that will not run again: its error stored for whoever
   * waits on the result, its error handler enqueued, its chord counted.
   */
  private async settleFailure(message: Message, error: unknown, chordOutcome?: StoredOutcome<unknown>): Promise<void> {
    const remote = toRemoteError(error, message);
    // Follow-ups that could never be enqueued are left out, and said so in the stored error.
    const problems = followUpProblems(message, this.isTask);
    const sound = withoutFollowUps(message, problems);
    const notes = problems.length > 0 ? [describeProblems(problems)] : [];
    let handler: { message: Message; data: string } | undefined;
    if (sound.onError) {
      try {
        handler = this.prepareFollowUp(sound.onError, new TaskError({ ...remote }));
      } catch (problem) {
        notes.push(`its error handler "${sound.onError.name}" cannot be enqueued: ${problem instanceof Error ? problem.message : String(problem)}`);
      }
    }
    if (notes.length > 0) {
      remote.message += ` (and ${notes.join('; ')})`;
      this.logger.error(`${message.name} ${message.id} failed, and ${notes.join('; ')}`);
    }
    if (message.dedupe) await this.endKeyed(message);
    if (this.results && !this.registry.get(message.name)?.periodic) await this.storeOutcome(message, { error: remote });
    if (handler) await this.enqueueSerialized(handler.message, handler.data);
    // A failed step ends its pipeline: the chord counts it where the last step would have.
    const member = chordMemberOf(sound);
    if (member) await countIntoChord(this, member, chordOutcome ?? { error: remote });
  }

  /**
   * With `storeIntermediateErrors` (Huey's default), a failed run that will
   * be retried stores its error and enqueues its error handler, as the last
   * failure does: a reader learns of each failure as it happens, and a later
   * success replaces the error with the value.
   */
  private async surfaceError(message: Message, error: unknown): Promise<void> {
    const remote = toRemoteError(error, message);
    if (this.results && !this.registry.get(message.name)?.periodic) await this.storeOutcome(message, { error: remote });
    if (!message.onError || followUpProblems(message, this.isTask).some((problem) => problem.field === 'onError')) return;
    try {
      const handler = this.prepareFollowUp(message.onError, new TaskError({ ...remote }));
      await this.enqueueSerialized(handler.message, handler.data);
    } catch (problem) {
      if (!(problem instanceof SerializationError)) throw problem;
      this.logger.error(`${message.name} ${message.id}: its error handler "${message.onError.name}" cannot be enqueued: ${problem.message}`);
    }
  }

  /**
   * A chord member that will never finish (revoked, expired, canceled before
   * its run) still counts, as null, so the callback runs as in Huey.
   */
  private async abortChordMember(message: Message): Promise<void> {
    const member = chordMemberOf(message);
    if (member && followUpProblems(member, this.isTask).length === 0) await countIntoChord(this, member, { value: null });
  }

  /** Enqueue the next try of a failed run, using up one retry. */
  private async retry(message: Message, context: TaskContext, error: unknown, settle?: Settle): Promise<void> {
    const delay = message.retryDelay;
    await this.emit('retrying', message, error, context);
    const next = { ...message, retries: message.retries - 1, retryDelay: delay * message.retryBackoff };
    await this.enqueueRetry(dueAt(next, delay > 0 ? Date.now() + delay * 1000 : null), settle, error);
  }

  /**
   * Enqueue a run's next try. Given the run's claim, the retry and the ack go
   * in one storage step where the storage can: a consumer that dies between
   * the two would otherwise leave the claim to be run again beside its retry.
   */
  private async enqueueRetry(next: Message, settle?: Settle, cause?: unknown, record: Record<string, string> = { state: 'retrying' }): Promise<void> {
    const now = Date.now();
    const due = next.eta !== null && next.eta > now ? next.eta : null;
    // Written before the retry can be taken, so its run's own record comes after.
    const failure = cause === undefined ? {} : errorFields(cause);
    void this.writeRecord(next, { ...record, eta: due, enqueued: due === null ? now : undefined, ...failure }, due === null ? 0 : due - now, true);
    const storage = settle?.storage;
    // In one step only where the retry goes to the storage the claim came from.
    if (!settle || !storage || settle.acked || !storage.retryAndAck || this.immediateMode || storage !== this.storageOf(next)) {
      const message = this.stamp(next);
      await this.enqueueSerialized(message, this.serializeMessage(message), true);
      return;
    }
    const message = this.stamp(next);
    const data = this.serializeMessage(message);
    const eta = message.eta !== null && message.eta > Date.now() ? message.eta : null;
    // Acked by the step below, or (if it fails) never: the claim then goes back and runs again.
    settle.acked = true;
    await this.track(storage.retryAndAck(settle.claim, data, eta, message.priority));
    this.enqueueCounter.count(message.name);
    await this.emit(eta === null ? 'enqueued' : 'scheduled', message);
  }

  /**
   * Run again later without using up a retry: asked for by RetryTask, or
   * forced by a full rate limit. A RetryTask with neither `delay` nor `eta`
   * waits the task's `retryDelay`, which then grows by its `retryBackoff`, as
   * a counted retry's does (Huey does the same); with one of them it runs then.
   */
  private async retryWithoutCount(message: Message, context: TaskContext, request: RetryTask | RateLimitExceeded, settle?: Settle): Promise<Outcome> {
    let next: Message;
    if (request instanceof RateLimitExceeded) {
      next = dueAt(message, request.retryAt.getTime());
    } else if (request.eta !== undefined || request.delay !== undefined) {
      next = dueAt(message, request.eta?.getTime() ?? (request.delay! > 0 ? Date.now() + request.delay! * 1000 : null));
    } else {
      const delay = message.retryDelay;
      // Capped: a task may ask again and again, and the wait must stay one a message can carry.
      next = dueAt({ ...message, retryDelay: Math.min(delay * message.retryBackoff, MAX_SECONDS) }, delay > 0 ? Date.now() + delay * 1000 : null);
    }
    // Huey's order: rate-limited (for a full limit), retrying, then scheduled or enqueued as the copy is written.
    if (request instanceof RateLimitExceeded) await this.emit('rate-limited', message, request, context);
    await this.emit('retrying', message, request, context);
    await this.enqueueRetry(next, settle, request);
    return { status: 'retrying', error: request };
  }

  private async cancel(
    message: Message,
    context: TaskContext,
    cancel: CancelExecution,
    before?: { value: null; retry: boolean },
    settle?: Settle,
  ): Promise<Outcome> {
    await this.emit('canceled', message, cancel, context);
    // As in Huey: retry: true forces a retry, undefined retries only when some are left (in a task, not a hook).
    const retry = before ? before.retry : cancel.retry === true || (cancel.retry === undefined && message.retries > 0);
    if (retry) {
      await this.retry({ ...message, retries: Math.max(message.retries, 1) }, context, cancel, settle);
      return { status: 'retrying', error: cancel };
    }
    // As in Huey, the caller can read why: get() rejects with a TaskError naming CancelExecution, and .error() handlers run.
    await this.settleFailure(message, cancel, before && { value: null });
    return { status: 'canceled', error: cancel };
  }

  /** True when `message` may run at `now`: it has no eta, or its eta has come (Huey's `ready_to_run`). */
  readyToRun(message: Message, now = Date.now()): boolean {
    return message.eta === null || message.eta <= now;
  }

  // ---- shared state ----

  /**
   * Keep a small value, serialized, for any process on this storage to read
   * (Huey's `huey.put`). Kept apart from results, locks and flags.
   */
  async put(key: string, value: unknown): Promise<void> {
    await this.storage.putData(sharedKey(key), this.serializer.serialize(value));
  }

  /** The value `put` under `key`, removed as it is read unless `peek` (as Huey's `huey.get`); undefined when none. */
  async get<T = unknown>(key: string, options: { peek?: boolean } = {}): Promise<T | undefined> {
    const data = options.peek ? await this.storage.peekData(sharedKey(key)) : await this.storage.popData(sharedKey(key));
    return data === null ? undefined : (this.serializer.deserialize(data) as T);
  }

  /** Remove the value `put` under `key`; true when there was one. */
  delete(key: string): Promise<boolean> {
    return this.storage.deleteData(sharedKey(key));
  }

  // ---- results ----

  private async storeOutcome(message: Message, outcome: StoredOutcome<unknown>): Promise<void> {
    await this.putOutcome(message, this.serializer.serialize(outcome));
  }

  /**
   * Store a task's outcome in its queue's storage, with the claim's ack in
   * the same step when the claim came from there (it always does, unless the
   * message was put in another queue by hand).
   */
  private async putOutcome(message: Message, data: string, settle?: Settle): Promise<void> {
    const storage = this.storageOf(message);
    const ttl = this.resultTtl === undefined ? undefined : this.resultTtl * 1000;
    if (!settle || settle.storage === storage) return storage.putResult(message.id, data, ttl, settle?.claim);
    await storage.putResult(message.id, data, ttl);
    await settle.storage.ack(settle.claim);
  }

  /**
   * The stored outcome of task `id`, removed unless `preserve`; undefined
   * while there is none. Without its `queue`, every queue's storage is looked in.
   */
  async readResult<T>(id: string, preserve = false, queue?: string): Promise<StoredOutcome<T> | undefined> {
    for (const storage of this.resultStorages(id, queue)) {
      const data = preserve ? await storage.peekData(id) : await storage.popData(id);
      if (data !== null) return this.serializer.deserialize(data) as StoredOutcome<T>;
    }
    return undefined;
  }

  /** A handle on the result of the task with this id (on `queue`, if known: otherwise every queue is looked in). */
  result<T = unknown>(id: string, options: { queue?: string } = {}): Result<T> {
    if (options.queue !== undefined) checkQueueName(options.queue);
    return new Result<T>(this, id, undefined, undefined, options.queue);
  }

  // ---- revocation ----

  private revokeValue(options: RevokeOptions): string {
    const until = options.revokeUntil;
    return this.serializer.serialize({
      once: options.revokeOnce ?? false,
      until: until === undefined ? null : until instanceof Date ? until.getTime() : until.toMillis(),
    });
  }

  /** Skip the task with this id when a worker picks it up. */
  async revokeById(id: string, options: RevokeOptions = {}): Promise<void> {
    await this.storage.putData(revokeKey(id), this.revokeValue(options));
  }

  restoreById(id: string): Promise<boolean> {
    return this.storage.deleteData(revokeKey(id));
  }

  isRevokedId(id: string): Promise<boolean> {
    return this.checkRevoked(revokeKey(id), Date.now(), true);
  }

  /** Skip every call of a task until restored (or for one run, or until a time). */
  async revokeTask(name: string, options: RevokeOptions = {}): Promise<void> {
    await this.storage.putData(revokeTaskKey(name), this.revokeValue(options));
  }

  restoreTask(name: string): Promise<boolean> {
    return this.storage.deleteData(revokeTaskKey(name));
  }

  isTaskRevoked(name: string): Promise<boolean> {
    return this.checkRevoked(revokeTaskKey(name), Date.now(), true);
  }

  /** The revocation flags of several messages, read in one round trip, for a worker that claimed a batch. */
  async readRevocationFlags(messages: readonly Message[]): Promise<RevocationFlags[]> {
    const values = await this.storage.peekDataMany(messages.flatMap((message) => [revokeKey(message.id), revokeTaskKey(message.name)]));
    return messages.map((_, i) => [values[2 * i] ?? null, values[2 * i + 1] ?? null]);
  }

  /** The data keys of a message's revocation flags, for a storage that reads them with the claim; see `ClaimPeek`. */
  readonly revocationPeek: ClaimPeek = { byId: revokeKey(''), byName: revokeTaskKey('') };

  /**
   * The revocation flags a batch's claims read as they were taken, when the
   * storage read them for every message and each was read under the
   * message's own id and task name; otherwise undefined, and the worker
   * reads them itself.
   */
  peekedRevocationFlags(runs: ReadonlyArray<{ claim: Claim; message: Message }>): RevocationFlags[] | undefined {
    const flags: RevocationFlags[] = [];
    for (const { claim, message } of runs) {
      const peeked = claim.peeked;
      if (!peeked || peeked.id !== message.id || peeked.name !== message.name) return undefined;
      flags.push([peeked.values[0], peeked.values[1]]);
    }
    return flags;
  }

  /** Both flags that can stop a run, read in one round trip unless given: the common case is that neither is set. */
  private async isRevokedMessage(message: Message, now: number, flags?: RevocationFlags): Promise<boolean> {
    if (flags && flags[0] === null && flags[1] === null) return false;
    const keys = [revokeKey(message.id), revokeTaskKey(message.name)];
    const [byId, byTask] = flags ?? (await this.storage.peekDataMany(keys));
    if (byId === null && byTask === null) return false;
    return (await this.checkRevoked(keys[0]!, now, false, byId)) || this.checkRevoked(keys[1]!, now, false, byTask);
  }

  /** Read a revocation flag; a worker's read uses up revoke-once, and a lapsed revoke-until is removed. */
  private async checkRevoked(key: string, now: number, peek: boolean, known?: string | null): Promise<boolean> {
    const data = known === undefined ? await this.storage.peekData(key) : known;
    if (data === null) return false;
    const flag = this.serializer.deserialize(data) as { once: boolean; until: number | null };
    if (flag.until !== null && now >= flag.until) {
      await this.storage.deleteIfEqual(key, data);
      return false;
    }
    if (flag.once && !peek) return this.storage.deleteIfEqual(key, data);
    return true;
  }

  /**
   * Revoke task `id` once and schedule a copy of `message` with a new id, due
   * at the new time (now with neither `delay` nor `eta`), with a new
   * `expires` or `priority` if given; a pipeline's later steps come along.
   */
  async reschedule<T>(message: Message | undefined, options: RescheduleOptions): Promise<Result<T>> {
    if (!message) throw new HueyError('this result has no message to reschedule: use the Result that the call returned');
    // Bad options throw before anything is revoked.
    checkCallOptions({ expires: options.expires, priority: options.priority });
    const eta = etaOf(options);
    let copy: Message = { ...message, id: randomUUID(), priority: options.priority ?? message.priority };
    if (options.expires instanceof Date) copy = { ...copy, expires: options.expires.getTime(), expiresIn: null };
    else if (options.expires !== undefined) copy = { ...copy, expiresIn: options.expires };
    copy = dueAt(copy, eta);
    await this.revokeById(message.id, { revokeOnce: true });
    await this.enqueue(copy);
    return new Result<T>(this, copy.id, Promise.resolve(), copy);
  }

  // ---- locks ----

  /** A named lock shared by every process on this storage; see `TaskLock`. */
  lockTask(name: string): TaskLock {
    return createTaskLock(() => this.storage, name);
  }

  // ---- pausing ----

  /**
   * Stop every worker on this storage from starting new tasks (from `queue`
   * only, when given), within about a second (each worker looks once a
   * second); running tasks finish, and tasks keep arriving in the queue.
   */
  async pause(queue?: string): Promise<void> {
    await this.storage.putData(pausedKey(queue), String(Date.now()));
  }

  /** Let workers start tasks again (from `queue` only, when given). False when it was not paused. */
  resume(queue?: string): Promise<boolean> {
    return this.storage.deleteData(pausedKey(queue));
  }

  /** Whether the whole instance is paused, or with `queue`, that queue by itself. */
  isPaused(queue?: string): Promise<boolean> {
    return this.storage.hasDataForKey(pausedKey(queue));
  }

  /** The queues among `queues` paused by themselves, and whether the whole instance is, in one round trip. */
  async pausedQueues(queues: readonly string[]): Promise<{ all: boolean; queues: Set<string> }> {
    const flags = await this.storage.peekDataMany([PAUSED_KEY, ...queues.map((queue) => pausedKey(queue))]);
    return { all: flags[0] !== null, queues: new Set(queues.filter((_, i) => flags[i + 1] !== null)) };
  }

  /** Clear the named locks (all of them with no names). Returns the names that were held. */
  async flushLocks(...names: string[]): Promise<string[]> {
    const keys = names.length > 0 ? names.map(lockKey) : Object.keys(await this.storage.resultItems()).filter((k) => k.startsWith(lockKey('')));
    const flushed: string[] = [];
    for (const key of keys) {
      if (await this.storage.deleteData(key)) flushed.push(key.slice(lockKey('').length));
    }
    return flushed;
  }

  /** A rate limit shared by every process on this storage; see `RateLimit`. */
  rateLimit(name: string, options: RateLimitOptions): RateLimit {
    return createRateLimit(() => this.storage, name, options);
  }

  // ---- signals and hooks ----

  /** Connect a handler to the named signals (every signal with no names): `huey.signal('complete')(handler)`. */
  signal(...names: SignalName[]): <H extends SignalHandler>(handler: H) => H {
    return (handler) => {
      this.signals.connect(handler, names);
      return handler;
    };
  }

  /** Disconnect a handler from the named signals (from all with no names). True when it was connected to any of them. */
  disconnectSignal(handler: SignalHandler, ...names: SignalName[]): boolean {
    return this.signals.disconnect(handler, names);
  }

  /** Emit a signal for a message from outside a run, as the consumer does for `interrupted`. */
  notify(signal: SignalName, message: Message, error?: unknown): Promise<void> {
    return this.emit(signal, message, error);
  }

  private emit(signal: SignalName, message: Message, error?: unknown, context?: TaskContext): Promise<void> {
    // Most signals have no handler; checking first spares a worker an async call and a context per task.
    return this.signals.hears(signal) ? this.signals.emit(signal, context ?? contextOf(message, this), error) : NOTHING;
  }

  /**
   * Run as each task is enqueued (synchronously, in the producer), to add
   * headers that its run reads as `task.headers`. With OpenTelemetry:
   * `huey.onEnqueue((headers) => propagation.inject(context.active(), headers))`,
   * then extract them in a `preExecute` hook to start the run's span.
   */
  onEnqueue<H extends EnqueueHook>(hook: H): H {
    this.enqueueHooks.push(hook);
    return hook;
  }

  /**
   * Give a message the headers of the enqueue hooks, unless it has its own (a
   * retry keeps its first). A message for a queue this instance does not know
   * is refused: no consumer of it would serve that queue (declare it with `huey.queue()`).
   */
  /**
   * The messages `work` becomes, stamped and serialized, ready to write
   * (`heads`, what is enqueued now), and the handles of all its tasks; for a
   * storage that writes them its own way (PostgresHuey.enqueueIn).
   */
  protected prepare(work: Signature<unknown> | Pipeline<unknown[]> | Group<unknown[]> | Chord<unknown[], unknown, unknown[]>): {
    heads: Array<{ message: Message; data: string }>;
    handles: Message[];
  } {
    const { heads, handles } = work instanceof Signature ? { heads: [work.message()], handles: undefined } : work.build();
    const stamped = heads.map((unstamped) => {
      const message = this.stamp(unstamped);
      return { message, data: this.serializeMessage(message) };
    });
    return { heads: stamped, handles: handles ?? stamped.map(({ message }) => message) };
  }

  /** The fields of a task's record as it is enqueued now (or scheduled), and how long to keep it; null with records off. */
  protected enqueueRecord(message: Message, now = Date.now()): { id: string; fields: Record<string, string>; ttlMs: number } | null {
    if (!this.records) return null;
    const later = message.eta !== null && message.eta > now;
    const fields = later ? { state: 'scheduled', created: now, eta: message.eta } : { state: 'enqueued', created: now, enqueued: now };
    return { id: message.id, fields: recordFields(message, fields, true), ttlMs: this.recordTtl * 1000 + (later ? message.eta! - now : 0) };
  }

  private stamp(message: Message): Message {
    if (message.queue !== undefined && !this.queueRegistry.has(message.queue)) {
      throw new ConfigurationError(`queue "${message.queue}" is not declared: declare it with huey.queue("${message.queue}") in the module that defines the tasks, so that consumers know it`);
    }
    if (this.enqueueHooks.length === 0 || message.headers) return message;
    const headers: Record<string, string> = {};
    for (const hook of this.enqueueHooks) hook(headers, message);
    return Object.keys(headers).length > 0 ? { ...message, headers } : message;
  }

  /** Run before every task in each worker; throw `CancelExecution` to skip the task. */
  preExecute<H extends Hook>(hook: H): H {
    this.preExecuteHooks.push(hook);
    return hook;
  }

  /** Run after every task in each worker, with its value or error. */
  postExecute<H extends PostHook>(hook: H): H {
    this.postExecuteHooks.push(hook);
    return hook;
  }

  /** Run once in each worker as it starts. */
  onStartup<H extends LifecycleHook>(hook: H): H {
    this.startupHooks.push(hook);
    return hook;
  }

  /** Run once in each worker as it stops. */
  onShutdown<H extends LifecycleHook>(hook: H): H {
    this.shutdownHooks.push(hook);
    return hook;
  }

  /** Remove a pre-execute hook; true when it was registered. */
  unregisterPreExecute(hook: Hook): boolean {
    return removeHook(this.preExecuteHooks, hook);
  }

  /** Remove a post-execute hook; true when it was registered. */
  unregisterPostExecute(hook: PostHook): boolean {
    return removeHook(this.postExecuteHooks, hook);
  }

  /** Remove a startup hook; true when it was registered. */
  unregisterOnStartup(hook: LifecycleHook): boolean {
    return removeHook(this.startupHooks, hook);
  }

  /** Remove a shutdown hook; true when it was registered. */
  unregisterOnShutdown(hook: LifecycleHook): boolean {
    return removeHook(this.shutdownHooks, hook);
  }

  // ---- looking at the queue ----

  /** Messages waiting to run on `queue` (the default queue unless given), next first (shard by shard). */
  async pending(limit?: number, queue?: string): Promise<Message[]> {
    return this.readEach(queue, limit, (storage, left) => storage.enqueuedItems(left));
  }

  /** Messages waiting for their time on `queue` (the default queue unless given), soonest first (shard by shard). */
  async scheduled(limit?: number, queue?: string): Promise<Message[]> {
    return this.readEach(queue, limit, (storage, left) => storage.scheduledItems(left));
  }

  private async readEach(queue: string | undefined, limit: number | undefined, read: (storage: Storage, left?: number) => Promise<string[]>): Promise<Message[]> {
    const messages: Message[] = [];
    for (const storage of this.queueStorages(queue)) {
      const left = limit === undefined ? undefined : limit - messages.length;
      if (left !== undefined && left <= 0) break;
      for (const data of await read(storage, left)) messages.push(this.deserializeMessage(data));
    }
    return messages;
  }

  /** How many messages wait on `queue` (the default queue unless given; every shard). */
  async pendingCount(queue?: string): Promise<number> {
    const counts = await Promise.all(this.queueStorages(queue).map((storage) => storage.queueSize()));
    return counts.reduce((a, b) => a + b, 0);
  }

  /** How many messages wait for their time on `queue` (the default queue unless given; every shard). */
  async scheduledCount(queue?: string): Promise<number> {
    const counts = await Promise.all(this.queueStorages(queue).map((storage) => storage.scheduleSize()));
    return counts.reduce((a, b) => a + b, 0);
  }

  /** Drop everything: every known queue's messages, schedule and results, and the flags and locks. */
  async flush(): Promise<void> {
    for (const queue of this.queueNames) {
      for (const storage of this.queueStorages(queue)) await storage.flushAll();
    }
  }
}

/** Remove every registration of `hook` (it may have been added twice), in place. */
function removeHook<T>(hooks: T[], hook: T): boolean {
  let removed = false;
  for (let i = hooks.indexOf(hook); i !== -1; i = hooks.indexOf(hook)) {
    hooks.splice(i, 1);
    removed = true;
  }
  return removed;
}

function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
