import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { UnknownTaskError, type RemoteError } from '../errors.js';
import type { ExecuteOptions, Huey, Outcome, RevocationFlags } from '../huey.js';
import type { Message } from '../message.js';
import type { Logger } from '../logger.js';
import type { Claim } from '../storage/storage.js';
import { QueueReader, type Source } from './queue-reader.js';
import { Reporter } from './reporter.js';

export interface WorkerOptions {
  /** Seconds to wait first when the queue is empty and the storage cannot block. @defaultValue 0.1 */
  delay?: number;
  /** Each empty poll multiplies the wait by this. @defaultValue 1.15 */
  backoff?: number;
  /** The longest wait between polls, in seconds. @defaultValue 10 */
  maxDelay?: number;
  /** Seconds a blocking dequeue waits before checking whether to stop. @defaultValue 1 */
  blockingTimeout?: number;
  /**
   * How many tasks this worker runs at once on its event loop (async workers);
   * they share its claimed list, its batches and its connections. @defaultValue 1
   */
  concurrency?: number;
  /**
   * Seconds of work a worker may claim ahead of the task it runs, judged by
   * how long its tasks have been taking: fast tasks are then claimed many to
   * a round trip, while a slow task is never claimed ahead at all. 0 claims
   * one message at a time. @defaultValue 0.01
   */
  prefetchWindow?: number;
  /** Where this worker's lines go. Default: the Huey's logger, each line starting with the worker id. */
  logger?: Logger;
  /** The clock runs are judged by (eta, expiry, revoke-until), in ms since the epoch; tests inject their own. */
  now?: () => number;
  /** Told when a run starts and ends: a thread or process worker reports these to the consumer. */
  onStart?: (message: Message) => void;
  onFinish?: (message: Message) => void;
  /**
   * The queues to take messages from, in strict order (always from the first
   * that has any). Default: every queue the Huey knows, the default queue first.
   */
  queues?: readonly string[];
}

/** How often a paused worker looks whether it may go on, in seconds (the flag itself is read once a second). */
const PAUSED_CHECK_SECONDS = 0.25;

/** The longest pause between tries while the storage is failing, in seconds. */
const MAX_ERROR_DELAY = 5;

/** The most messages claimed in one round trip, however fast the tasks (or the concurrency, if more). */
const MAX_BATCH = 100;

/**
 * Runs of quick tasks can follow each other without ever leaving the
 * microtask queue; after this many ms the worker lets the event loop turn,
 * so that the Redis client writes what runs have sent (the next claim,
 * results) and reads replies while the batch goes on, and timers fire.
 */
const YIELD_AFTER_MS = 1;

/**
 * Messages claimed ahead wait for a free slot about one prefetch window;
 * once they have waited this many windows (and at least GIVE_BACK_MIN_MS) a
 * run is taking far longer than the recent ones did, and they go back on
 * the queue for an idle worker to take.
 */
const GIVE_BACK_WINDOWS = 10;
const GIVE_BACK_MIN_MS = 100;

/** How much each run's duration moves the running average that sizes batches. */
const AVERAGE_WEIGHT = 0.2;

/** Claimed messages ready to run, with their revocation flags when read for the whole batch. */
interface Batch {
  /** Where they were claimed from, and are acked. */
  source: Source;
  /** How many messages were claimed, counting those dead-lettered on reading. */
  claimed: number;
  runs: Array<{ claim: Claim; message: Message }>;
  flags?: RevocationFlags[];
  /** When the flags were read (performance.now()). */
  flagsRead: number;
}

/** The same promise with a handler attached now, so a rejection waits, unreported, for whoever awaits it. */
function quiet<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => {});
  return promise;
}

function prefixed(logger: Logger, prefix: string): Logger {
  return {
    debug: (message) => logger.debug(`${prefix}: ${message}`),
    info: (message) => logger.info(`${prefix}: ${message}`),
    warn: (message) => logger.warn(`${prefix}: ${message}`),
    error: (message) => logger.error(`${prefix}: ${message}`),
  };
}

/**
 * One loop that claims messages, runs each through `huey.execute` (which
 * acks it) and keeps up to `concurrency` runs going at once. Thread, process
 * and async workers all run this same loop; they differ only in where it
 * runs and how many runs it keeps going.
 */
export class Worker {
  private readonly delay: number;
  private readonly backoff: number;
  private readonly maxDelay: number;
  private readonly blockingTimeoutMs: number;
  private readonly now: () => number;
  private readonly prefetchWindowMs: number;
  readonly concurrency: number;
  /** Running average of a run's duration in ms; unknown until the first run. */
  private averageRunMs?: number;
  private readonly logger: Logger;
  private readonly onStart?: (message: Message) => void;
  private readonly onFinish?: (message: Message) => void;
  private stopping = false;
  /** The next batch, claimed while this one runs. */
  private ahead?: Promise<Batch | null>;
  /** How long messages claimed ahead may wait for a slot before they are given back, in ms. */
  private readonly giveBackAfterMs: number;
  /** Final storage steps of runs, sent and not yet confirmed. */
  private unsettled: Array<Promise<void>> = [];
  private wake?: () => void;
  /** Runs going now. */
  private running = 0;
  /** Called when a run ends, by whoever waits for a free slot. */
  private runEnded?: (ended: boolean) => void;
  /** When the loop began waiting for a slot with messages claimed ahead in hand (performance.now()). */
  private slotWaitSince?: number;
  /**
   * Looks now and then whether that wait has gone on too long; one timer per
   * worker, not one per wait, and none while the worker is idle (half an idle
   * consumer's CPU went to it).
   */
  private watchdog?: NodeJS.Timeout;
  /** The first storage failure of a run, for the loop to handle. */
  private failure?: { error: unknown };
  /** Messages were claimed and then not started: a stop or a failure came mid-batch. */
  private leftUnstarted = false;
  /** Counts and recent runs, written to the storage once a second while `run()` goes. */
  readonly reporter: Reporter;
  /** Where messages come from: the worker's queues, in order. */
  readonly reader: QueueReader;

  constructor(
    readonly huey: Huey,
    readonly id: string,
    options: WorkerOptions = {},
  ) {
    this.delay = options.delay ?? 0.1;
    this.backoff = options.backoff ?? 1.15;
    this.maxDelay = options.maxDelay ?? 10;
    this.blockingTimeoutMs = (options.blockingTimeout ?? 1) * 1000;
    this.now = options.now ?? Date.now;
    this.prefetchWindowMs = (options.prefetchWindow ?? 0.01) * 1000;
    this.giveBackAfterMs = Math.max(GIVE_BACK_MIN_MS, GIVE_BACK_WINDOWS * this.prefetchWindowMs);
    this.concurrency = options.concurrency ?? 1;
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) throw new RangeError('concurrency must be a whole number of at least 1');
    this.reader = new QueueReader(huey, id, options.queues ?? huey.queueNames);
    this.reporter = new Reporter(huey, id, this.concurrency, this.reader.queues);
    this.logger = options.logger ?? prefixed(huey.logger, id);
    this.onStart = options.onStart;
    this.onFinish = options.onFinish;
  }

  /** True while a run is going: the consumer asks this at shutdown. */
  get busy(): boolean {
    return this.running > 0;
  }

  /**
   * Claim and run messages until `stop()`. While the queue is busy, the next
   * batch is claimed while this one runs, and results and acks are confirmed
   * while later runs go on, so no run waits on Redis. When the storage fails
   * (Redis went away) the worker stays alive, lets its runs finish, waits
   * with backoff, and once the storage answers again puts back whatever it
   * still holds claimed, so a run whose result could not be stored is run
   * again rather than lost.
   */
  async run(): Promise<void> {
    let delay = this.delay;
    let errorDelay = this.delay;
    let holdsStaleClaims = false;
    await this.reporter.start();
    while (!this.stopping) {
      let worked = false;
      let failed = false;
      try {
        if (holdsStaleClaims) {
          const requeued = await this.reader.requeue();
          if (requeued > 0) this.logger.warn(`the storage is back: ${requeued} claimed task(s) whose outcome was not stored go back on the queue`);
          holdsStaleClaims = false;
        }
        if (!(await this.freeSlot(this.ahead !== undefined))) {
          await this.giveBack();
          await this.freeSlot();
        }
        this.throwFailure();
        this.reader.paused = this.reporter.pausedQueues;
        if ((this.reporter.paused || this.reader.allPaused) && !this.ahead) {
          // Paused: start nothing new (runs going finish), and look again shortly.
          await this.settle();
          await this.sleep(PAUSED_CHECK_SECONDS);
          continue;
        }
        let batch = this.ahead ? await this.ahead : null;
        this.ahead = undefined;
        if (!batch && !this.stopping) {
          // About to wait for work: with nothing running, first confirm everything run so far.
          if (this.running === 0) {
            this.stopWatchdog();
            await this.settle();
          }
          batch = await this.fetch(this.reader.blocking ? this.blockingTimeoutMs : 0);
        }
        if (batch && this.reporter.paused) {
          // Paused while this claim was waiting: put it back, once the runs going (whose claims sit beside it) are acked.
          await this.allRunsEnded();
          await this.settle();
          await this.reader.requeue();
          continue;
        }
        if (batch) {
          worked = true;
          if (batch.runs.length > 1 && !this.stopping) this.ahead = quiet(this.fetch(0));
          await this.startBatch(batch);
        }
        errorDelay = this.delay;
      } catch (error) {
        this.logger.error(`storage error, retrying in ${errorDelay.toFixed(1)}s: ${errorText(error)}`);
        failed = true;
        holdsStaleClaims = true;
        this.ahead = undefined;
        // Runs still going hold claims too: they finish before anything is put back.
        await this.allRunsEnded();
        this.failure = undefined;
        this.leftUnstarted = false;
        this.unsettled = [];
      }
      if (failed && !this.stopping) {
        await this.sleep(errorDelay);
        errorDelay = Math.min(errorDelay * 2, MAX_ERROR_DELAY);
      } else if (worked) {
        delay = this.delay;
      } else if (!this.stopping && !this.reader.blocking) {
        await this.sleep(delay);
        delay = Math.min(delay * this.backoff, this.maxDelay);
      }
    }
    await this.allRunsEnded();
    this.stopWatchdog();
    await this.reporter.stop();
    // No wait may claim after the consumer has put back what this worker holds.
    const waited = await this.reader.endWaits().catch(() => true);
    if (holdsStaleClaims || this.failure) return; // the consumer puts them back once the storage answers
    try {
      // Messages claimed ahead that never started go back on the queue, once every started run is acked.
      const ahead = this.ahead ? await this.ahead : null;
      this.ahead = undefined;
      await this.settle();
      if (ahead || this.leftUnstarted || waited) await this.reader.requeue();
    } catch (error) {
      this.logger.error(`could not settle this worker's last tasks: ${errorText(error)}`);
    }
  }

  /** Let the runs going finish, start no more, and return from `run()`. */
  stop(): void {
    this.stopping = true;
    this.wake?.();
    this.runEnded?.(true);
  }

  private sleep(seconds: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, seconds * 1000);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  /**
   * Claim a batch of messages (waiting up to `timeoutMs` for the first), run
   * them, and settle them. Returns how many were claimed: 0 when the queue
   * was empty.
   */
  async runOnce(timeoutMs = 0): Promise<number> {
    const batch = await this.fetch(timeoutMs);
    if (batch) await this.startBatch(batch);
    await this.allRunsEnded();
    this.throwFailure();
    await this.settle();
    return batch?.claimed ?? 0;
  }

  /**
   * The free slots, and beyond them as many messages as the prefetch window
   * holds at the recent pace (a run's time, shared among the slots); only
   * the free slots until a run was timed.
   */
  private batchSize(): number {
    const free = Math.max(1, this.concurrency - this.running);
    if (this.prefetchWindowMs <= 0 || this.averageRunMs === undefined) return free;
    const ahead = Math.floor((this.prefetchWindowMs * this.concurrency) / Math.max(this.averageRunMs, 0.001));
    return Math.min(Math.max(MAX_BATCH, this.concurrency), free + ahead);
  }

  /**
   * Claim a batch, read its messages (dead-lettering what cannot run) and
   * their revocation flags: read with the claim where the storage can, else,
   * for more than one, all in one round trip.
   */
  private async fetch(timeoutMs: number): Promise<Batch | null> {
    const taken = await this.reader.take(this.batchSize(), timeoutMs);
    if (!taken) return null;
    const { source, claims } = taken;
    const runs: Batch['runs'] = [];
    for (const claim of claims) {
      const message = await this.readMessage(claim, source);
      if (message) runs.push({ claim, message });
    }
    // Read with the claim where the storage could: no round trip of their own, and none left
    // waiting in the storage behind the results and acks this worker sent meanwhile.
    let flags = this.huey.peekedRevocationFlags(runs);
    if (!flags && runs.length > 1) flags = await this.huey.readRevocationFlags(runs.map((run) => run.message));
    return { source, claimed: claims.length, runs, flags, flagsRead: performance.now() };
  }

  /**
   * Start a batch's runs in order, each as a slot frees up; returns once the
   * last one has started. Each run's final storage step (result and ack) is
   * sent without waiting for its reply; those replies are awaited a batch
   * later (`settle`), so a failure still surfaces and puts the claims back.
   * Revocation flags older than twice the prefetch window are read again,
   * per message. A stop asked for mid-batch leaves the rest unstarted, to be
   * put back once the started runs are acked.
   */
  private async startBatch(batch: Batch): Promise<void> {
    const previous = this.unsettled;
    this.unsettled = [];
    // Each step gets its handler at once: one that fails before it is awaited is not an unhandled rejection.
    const settleLater = (step: Promise<void>) => void this.unsettled.push(quiet(step));
    const staleAfter = Math.max(2 * this.prefetchWindowMs, 1);
    let turned = performance.now();
    for (let i = 0; i < batch.runs.length; i++) {
      if (this.running >= this.concurrency && !(await this.freeSlot(true))) {
        // A run is taking far longer than the recent ones: the rest go back for idle workers.
        await this.giveBack(batch.source, batch.runs.slice(i).map((run) => run.claim));
        break;
      }
      if (performance.now() - turned > YIELD_AFTER_MS) {
        await nextTurn();
        turned = performance.now();
      }
      if (this.stopping || this.failure) {
        this.leftUnstarted = true;
        break;
      }
      const { claim, message } = batch.runs[i]!;
      const fresh = batch.flags && performance.now() - batch.flagsRead <= staleAfter;
      this.start(claim, message, batch.source, { revocationFlags: fresh ? batch.flags![i] : undefined, settleLater, storage: batch.source.storage });
    }
    await this.settle(previous);
  }

  /** Start a run in a slot; its storage failure, if any, is kept for the loop. */
  private start(claim: Claim, message: Message, source: Source, options: ExecuteOptions): void {
    this.running++;
    this.runMessage(claim, message, source, options).then(
      () => this.runEnd(),
      (error: unknown) => {
        this.failure ??= { error };
        this.runEnd();
      },
    );
  }

  private stopWatchdog(): void {
    clearInterval(this.watchdog);
    this.watchdog = undefined;
  }

  private runEnd(): void {
    this.running--;
    this.runEnded?.(true);
  }

  /**
   * Wait until a slot is free (or the worker is stopping). While `run()`
   * goes, a wait with messages claimed ahead in hand (`holdingAhead`) gives
   * up after the give-back time: false.
   */
  private async freeSlot(holdingAhead = false): Promise<boolean> {
    if (holdingAhead) {
      this.slotWaitSince = performance.now();
      this.watchdog ??= setInterval(() => {
        if (this.slotWaitSince !== undefined && performance.now() - this.slotWaitSince > this.giveBackAfterMs) this.runEnded?.(false);
      }, this.giveBackAfterMs / 2).unref();
    }
    try {
      while (this.running >= this.concurrency && !this.stopping) {
        if (!(await this.nextRunEnd()) && holdingAhead) return false;
      }
      return true;
    } finally {
      if (holdingAhead) this.slotWaitSince = undefined;
    }
  }

  /**
   * Give back messages claimed and not started, with the next batch if one
   * was claimed ahead, to the front of the queue: the runs in hand are taking
   * longer than the batch was sized for, and another worker may be idle.
   */
  private async giveBack(source?: Source, claims: Claim[] = []): Promise<void> {
    const ahead = this.ahead ? await this.ahead : null;
    this.ahead = undefined;
    const parts: Array<[Source, Claim[]]> = [];
    if (source && claims.length > 0) parts.push([source, claims]);
    if (ahead && ahead.runs.length > 0) parts.push([ahead.source, ahead.runs.map((run) => run.claim)]);
    let released = 0;
    // The batch in hand first, then the one claimed after it: each goes back to its own queue's front.
    for (const [from, given] of parts.reverse()) released += await from.storage.release(given);
    if (released > 0) this.logger.info(`gave back ${released} task(s) claimed ahead: a run is taking longer than expected`);
  }

  private async allRunsEnded(): Promise<void> {
    while (this.running > 0) await this.nextRunEnd();
  }

  /** Resolves true when a run ends (or a stop is asked for), false when the watchdog says a wait went on too long. */
  private nextRunEnd(): Promise<boolean> {
    return new Promise((resolve) => {
      this.runEnded = (ended) => {
        this.runEnded = undefined;
        resolve(ended);
      };
    });
  }

  private throwFailure(): void {
    if (this.failure) throw this.failure.error;
  }

  /** Wait for the final storage steps sent so far (or the given ones); the first failure is thrown. */
  private async settle(steps = this.unsettled): Promise<void> {
    if (steps === this.unsettled) this.unsettled = [];
    for (const step of steps) await step;
  }

  /** Read a claimed message, dead-lettering what cannot run: too large, corrupt, or of an unknown task. */
  private async readMessage(claim: Claim, source: Source): Promise<Message | null> {
    const { huey } = this;
    const size = huey.payloadSize(claim.data);
    if (size > huey.maxPayloadSize) {
      await this.deadLetter(claim, source, `payload of ${size} bytes is over the limit of ${huey.maxPayloadSize}`);
      return null;
    }
    let message: Message;
    try {
      message = huey.deserializeMessage(claim.data);
    } catch (error) {
      await this.deadLetter(claim, source, `corrupt payload: ${errorText(error)}`);
      return null;
    }
    if (!huey.definition(message.name)) {
      const error = new UnknownTaskError(message.name);
      await this.deadLetter(claim, source, error.message, message, error);
      return null;
    }
    return message;
  }

  /** Run one message through `huey.execute`, which also settles its claim. */
  private async runMessage(claim: Claim, message: Message, source: Source, options: ExecuteOptions): Promise<Outcome> {
    // A task waiting on others comes up again and again until they are done: its looks are not news.
    (message.dependsOn ? this.logger.debug : this.logger.info).call(this.logger, `executing ${message.name} ${message.id}`);
    const started = performance.now();
    this.reporter.started(message);
    // From here a death of this consumer counts as a failed run of this message, not as a claim to put back.
    // A task waiting on others is marked by huey.run once they have completed: a look is not a run.
    if (!message.dependsOn) source.storage.markStarted(claim);
    this.onStart?.(message);
    let outcome: Outcome;
    try {
      // Settles the claim too: stored result and ack in one step where it can.
      outcome = await this.huey.execute(message, this.now(), claim, options);
    } catch (error) {
      this.reporter.abandoned(message);
      throw error;
    } finally {
      this.onFinish?.(message);
    }
    const ms = performance.now() - started;
    // A deferred task did not run: it counts as no run, and no duration.
    if (outcome.status === 'deferred') {
      this.reporter.abandoned(message);
      return outcome;
    }
    this.reporter.finished(message, outcome, ms);
    this.averageRunMs = this.averageRunMs === undefined ? ms : this.averageRunMs + AVERAGE_WEIGHT * (ms - this.averageRunMs);
    this.log(message, outcome, ms);
    return outcome;
  }

  private async deadLetter(claim: Claim, source: Source, reason: string, message?: Message, error?: Error): Promise<void> {
    this.logger.error(`dead-lettered a message: ${reason}`);
    await source.storage.deadLetter(claim, reason);
    if (message) await this.huey.writeRecord(message, { state: 'dead', ended: Date.now(), errorName: error?.name ?? 'DeadLetter', errorMessage: reason }, 0, true);
    if (message) await this.huey.endKeyed(message);
    if (message && error && this.huey.results) {
      // Whoever waits on this task's result learns why it will never run.
      const remote: RemoteError = { name: error.name, message: error.message, taskName: message.name, taskId: message.id, retries: message.retries };
      await this.huey.storageOf(message).putResult(message.id, this.huey.serializer.serialize({ error: remote }));
    }
  }

  private log(message: Message, outcome: Outcome, ms: number): void {
    const what = `${message.name} ${message.id}`;
    const took = `${(ms / 1000).toFixed(3)}s`;
    const { logger } = this;
    switch (outcome.status) {
      case 'complete':
        logger.info(`${what} executed in ${took}`);
        break;
      case 'failed':
      case 'locked':
        logger.error(`${what} failed in ${took}: ${errorText(outcome.error, true)}`);
        break;
      case 'retrying':
        logger.warn(`${what} will run again (${took}): ${errorText(outcome.error)}`);
        break;
      case 'canceled':
        logger.warn(`${what} canceled: ${errorText(outcome.error)}`);
        break;
      case 'revoked':
      case 'expired':
        logger.info(`${what} ${outcome.status}, not run`);
        break;
      case 'scheduled':
        logger.info(`${what} is not due yet, back in the schedule`);
        break;
      case 'deferred':
        // Looked at again and again while its parents run: not worth a line each time.
        logger.debug(`${what} waits for the tasks it depends on`);
        break;
    }
  }
}

function errorText(error: unknown, stack = false): string {
  if (!(error instanceof Error)) return String(error);
  return stack && error.stack ? error.stack : `${error.name}: ${error.message}`;
}
