import { performance } from 'node:perf_hooks';
import { UnknownTaskError, type RemoteError } from '../errors.js';
import type { ExecuteOptions, Huey, Outcome, RevocationFlags } from '../huey.js';
import type { Message } from '../message.js';
import type { Logger } from '../logger.js';
import type { Claim } from '../storage/storage.js';

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
   * Seconds of work a worker may claim ahead of the task it runs, judged by
   * how long its tasks have been taking: fast tasks are then claimed many to
   * a round trip, while a slow task is never claimed ahead at all. 0 claims
   * one message at a time. @defaultValue 0.01
   */
  prefetchWindow?: number;
  /** Where this worker's lines go. Default: the Huey's logger, each line starting with the worker id. */
  logger?: Logger;
  /** Told when a run starts and ends: a thread or process worker reports these to the consumer. */
  onStart?: (message: Message) => void;
  onFinish?: (message: Message) => void;
}

/** The longest pause between tries while the storage is failing, in seconds. */
const MAX_ERROR_DELAY = 5;

/** The most messages claimed in one round trip, however fast the tasks. */
const MAX_BATCH = 100;

/** How much each run's duration moves the running average that sizes batches. */
const AVERAGE_WEIGHT = 0.2;

/** Claimed messages ready to run, with their revocation flags when read for the whole batch. */
interface Batch {
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
 * One loop that claims a message, runs it through `huey.execute` and acks
 * it. Thread, process and async workers all run this same loop; they differ
 * only in where it runs.
 */
export class Worker {
  private readonly delay: number;
  private readonly backoff: number;
  private readonly maxDelay: number;
  private readonly blockingTimeoutMs: number;
  private readonly prefetchWindowMs: number;
  /** Running average of a run's duration in ms; unknown until the first run. */
  private averageRunMs?: number;
  private readonly logger: Logger;
  private readonly onStart?: (message: Message) => void;
  private readonly onFinish?: (message: Message) => void;
  private stopping = false;
  /** Final storage steps of runs, sent and not yet confirmed. */
  private unsettled: Array<Promise<void>> = [];
  private wake?: () => void;
  /** The message being run now, for the consumer's interruption handling. */
  current: Message | null = null;

  constructor(
    readonly huey: Huey,
    readonly id: string,
    options: WorkerOptions = {},
  ) {
    this.delay = options.delay ?? 0.1;
    this.backoff = options.backoff ?? 1.15;
    this.maxDelay = options.maxDelay ?? 10;
    this.blockingTimeoutMs = (options.blockingTimeout ?? 1) * 1000;
    this.prefetchWindowMs = (options.prefetchWindow ?? 0.01) * 1000;
    this.logger = options.logger ?? prefixed(huey.logger, id);
    this.onStart = options.onStart;
    this.onFinish = options.onFinish;
  }

  /**
   * Claim and run messages until `stop()`. While the queue is busy, the next
   * batch is claimed while this one runs, and a batch's results and acks are
   * confirmed while the next one runs, so neither waits on Redis. When the
   * storage fails (Redis went away) the worker stays alive, waits with
   * backoff, and once the storage answers again puts back whatever it still
   * holds claimed, so a run whose result could not be stored is run again
   * rather than lost.
   */
  async run(): Promise<void> {
    let delay = this.delay;
    let errorDelay = this.delay;
    let holdsStaleClaims = false;
    let next: Promise<Batch | null> | undefined;
    while (!this.stopping) {
      let worked = false;
      let failed = false;
      try {
        if (holdsStaleClaims) {
          const requeued = await this.huey.storage.requeue(this.id);
          if (requeued > 0) this.logger.warn(`the storage is back: ${requeued} claimed task(s) whose outcome was not stored go back on the queue`);
          holdsStaleClaims = false;
        }
        let batch = next ? await next : null;
        next = undefined;
        if (!batch) {
          // About to wait for work: first make sure everything run so far is settled.
          await this.settle();
          batch = await this.fetch(this.huey.storage.blocking ? this.blockingTimeoutMs : 0);
        }
        if (batch) {
          worked = true;
          if (batch.runs.length > 1 && !this.stopping) next = quiet(this.fetch(0));
          await this.runBatch(batch);
        }
        errorDelay = this.delay;
      } catch (error) {
        this.logger.error(`storage error, retrying in ${errorDelay.toFixed(1)}s: ${errorText(error)}`);
        failed = true;
        holdsStaleClaims = true;
        next = undefined;
        this.unsettled = [];
      }
      if (failed && !this.stopping) {
        await this.sleep(errorDelay);
        errorDelay = Math.min(errorDelay * 2, MAX_ERROR_DELAY);
      } else if (worked) {
        delay = this.delay;
      } else if (!this.stopping && !this.huey.storage.blocking) {
        await this.sleep(delay);
        delay = Math.min(delay * this.backoff, this.maxDelay);
      }
    }
    if (holdsStaleClaims) return; // the consumer puts them back once the storage answers
    try {
      // A batch claimed ahead never started: it goes back on the queue.
      const ahead = next ? await next : null;
      await this.settle();
      if (ahead) await this.huey.storage.requeue(this.id);
    } catch (error) {
      this.logger.error(`could not settle this worker's last tasks: ${errorText(error)}`);
    }
  }

  /** Finish the message in hand, then return from `run()`. */
  stop(): void {
    this.stopping = true;
    this.wake?.();
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
   * them one after another and settle them. Returns how many were claimed: 0
   * when the queue was empty.
   */
  async runOnce(timeoutMs = 0): Promise<number> {
    const batch = await this.fetch(timeoutMs);
    if (batch) await this.runBatch(batch);
    await this.settle();
    return batch?.claimed ?? 0;
  }

  /** As many messages as fit the prefetch window at the recent pace; one until a run was timed. */
  private batchSize(): number {
    if (this.prefetchWindowMs <= 0 || this.averageRunMs === undefined) return 1;
    return Math.max(1, Math.min(MAX_BATCH, 1 + Math.floor(this.prefetchWindowMs / Math.max(this.averageRunMs, 0.001))));
  }

  /**
   * Claim a batch, read its messages (dead-lettering what cannot run) and,
   * for more than one, read all their revocation flags in one round trip.
   */
  private async fetch(timeoutMs: number): Promise<Batch | null> {
    const claims = await this.huey.storage.dequeueMany(this.id, this.batchSize(), timeoutMs);
    if (claims.length === 0) return null;
    const runs: Batch['runs'] = [];
    for (const claim of claims) {
      const message = await this.readMessage(claim);
      if (message) runs.push({ claim, message });
    }
    const flags = runs.length > 1 ? await this.huey.readRevocationFlags(runs.map((run) => run.message)) : undefined;
    return { claimed: claims.length, runs, flags, flagsRead: performance.now() };
  }

  /**
   * Run a batch's messages in order. Each run's final storage step (result
   * and ack) is sent without waiting for its reply; the replies are awaited
   * once the next batch has run (`settle`), so that a failure still surfaces
   * and puts the claims back. Revocation flags older than twice the prefetch
   * window are read again, per message. A stop asked for mid-batch puts the
   * messages not yet started back on the queue.
   */
  private async runBatch(batch: Batch): Promise<void> {
    const previous = this.unsettled;
    this.unsettled = [];
    // Each step gets its handler at once: one that fails before it is awaited is not an unhandled rejection.
    const settleLater = (step: Promise<void>) => void this.unsettled.push(quiet(step));
    const staleAfter = Math.max(2 * this.prefetchWindowMs, 1);
    let started = 0;
    for (const { claim, message } of batch.runs) {
      if (this.stopping) break;
      const fresh = batch.flags && performance.now() - batch.flagsRead <= staleAfter;
      await this.runMessage(claim, message, { revocationFlags: fresh ? batch.flags![started] : undefined, settleLater });
      started++;
    }
    await this.settle(previous);
    if (started < batch.runs.length) {
      // Every started run must be acked before the rest is put back, or it would run twice.
      await this.settle();
      await this.huey.storage.requeue(this.id);
    }
  }

  /** Wait for the final storage steps sent so far (or the given ones); the first failure is thrown. */
  private async settle(steps = this.unsettled): Promise<void> {
    if (steps === this.unsettled) this.unsettled = [];
    for (const step of steps) await step;
  }

  /** Read a claimed message, dead-lettering what cannot run: too large, corrupt, or of an unknown task. */
  private async readMessage(claim: Claim): Promise<Message | null> {
    const { huey } = this;
    const size = huey.payloadSize(claim.data);
    if (size > huey.maxPayloadSize) {
      await this.deadLetter(claim, `payload of ${size} bytes is over the limit of ${huey.maxPayloadSize}`);
      return null;
    }
    let message: Message;
    try {
      message = huey.deserializeMessage(claim.data);
    } catch (error) {
      await this.deadLetter(claim, `corrupt payload: ${errorText(error)}`);
      return null;
    }
    if (!huey.definition(message.name)) {
      const error = new UnknownTaskError(message.name);
      await this.deadLetter(claim, error.message, message, error);
      return null;
    }
    return message;
  }

  /** Run one message through `huey.execute`, which also settles its claim. */
  private async runMessage(claim: Claim, message: Message, options: ExecuteOptions): Promise<Outcome> {
    this.logger.info(`executing ${message.name} ${message.id}`);
    const started = performance.now();
    this.current = message;
    this.onStart?.(message);
    let outcome: Outcome;
    try {
      // Settles the claim too: stored result and ack in one step where it can.
      outcome = await this.huey.execute(message, Date.now(), claim, options);
    } finally {
      this.current = null;
      this.onFinish?.(message);
    }
    const ms = performance.now() - started;
    this.averageRunMs = this.averageRunMs === undefined ? ms : this.averageRunMs + AVERAGE_WEIGHT * (ms - this.averageRunMs);
    this.log(message, outcome, ms);
    return outcome;
  }

  private async deadLetter(claim: Claim, reason: string, message?: Message, error?: Error): Promise<void> {
    this.logger.error(`dead-lettered a message: ${reason}`);
    await this.huey.storage.deadLetter(claim, reason);
    if (message && error && this.huey.results) {
      // Whoever waits on this task's result learns why it will never run.
      const remote: RemoteError = { name: error.name, message: error.message, taskName: message.name, taskId: message.id, retries: message.retries };
      await this.huey.storage.putResult(message.id, this.huey.serializer.serialize({ error: remote }));
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
    }
  }
}

function errorText(error: unknown, stack = false): string {
  if (!(error instanceof Error)) return String(error);
  return stack && error.stack ? error.stack : `${error.name}: ${error.message}`;
}
