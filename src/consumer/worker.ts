import { performance } from 'node:perf_hooks';
import { UnknownTaskError, type RemoteError } from '../errors.js';
import type { Huey, Outcome } from '../huey.js';
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
  /** Where this worker's lines go. Default: the Huey's logger, each line starting with the worker id. */
  logger?: Logger;
  /** Told when a run starts and ends: a thread or process worker reports these to the consumer. */
  onStart?: (message: Message) => void;
  onFinish?: (message: Message) => void;
}

/** The longest pause between tries while the storage is failing, in seconds. */
const MAX_ERROR_DELAY = 5;

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
  private readonly logger: Logger;
  private readonly onStart?: (message: Message) => void;
  private readonly onFinish?: (message: Message) => void;
  private stopping = false;
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
    this.logger = options.logger ?? prefixed(huey.logger, id);
    this.onStart = options.onStart;
    this.onFinish = options.onFinish;
  }

  /**
   * Claim and run messages until `stop()`. When the storage fails (Redis
   * went away) the worker stays alive, waits with backoff, and once the
   * storage answers again puts back whatever it still holds claimed, so a
   * run whose result could not be stored is run again rather than lost.
   */
  async run(): Promise<void> {
    let delay = this.delay;
    let errorDelay = this.delay;
    let holdsStaleClaims = false;
    while (!this.stopping) {
      let worked = false;
      let failed = false;
      try {
        if (holdsStaleClaims) {
          const requeued = await this.huey.storage.requeue(this.id);
          if (requeued > 0) this.logger.warn(`the storage is back: ${requeued} task(s) whose outcome was not stored go back on the queue`);
          holdsStaleClaims = false;
        }
        worked = await this.runOnce(this.huey.storage.blocking ? this.blockingTimeoutMs : 0);
        errorDelay = this.delay;
      } catch (error) {
        this.logger.error(`storage error, retrying in ${errorDelay.toFixed(1)}s: ${errorText(error)}`);
        failed = true;
        holdsStaleClaims = true;
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

  /** Claim one message (waiting up to `timeoutMs`) and run it. False when the queue was empty. */
  async runOnce(timeoutMs = 0): Promise<boolean> {
    const claim = await this.huey.storage.dequeue(this.id, timeoutMs);
    if (!claim) return false;
    await this.process(claim);
    return true;
  }

  /** Run one claimed message and settle it: ack, or dead-letter what cannot run. */
  async process(claim: Claim): Promise<Outcome | null> {
    const { huey } = this;
    let message: Message;
    const size = huey.payloadSize(claim.data);
    if (size > huey.maxPayloadSize) {
      await this.deadLetter(claim, `payload of ${size} bytes is over the limit of ${huey.maxPayloadSize}`);
      return null;
    }
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

    this.logger.info(`executing ${message.name} ${message.id}`);
    const started = performance.now();
    this.current = message;
    this.onStart?.(message);
    let outcome: Outcome;
    try {
      // Settles the claim too: stored result and ack in one step where it can.
      outcome = await huey.execute(message, Date.now(), claim);
    } finally {
      this.current = null;
      this.onFinish?.(message);
    }
    this.log(message, outcome, performance.now() - started);
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
