import { randomUUID } from 'node:crypto';
import { DateTime } from 'luxon';
import type { Huey } from '../huey.js';

export interface SchedulerOptions {
  /** Seconds between looks at the schedule. @defaultValue 1 */
  interval?: number;
  /** Enqueue periodic tasks. @defaultValue true */
  periodic?: boolean;
  /** The clock, in ms since the epoch; tests inject their own. */
  now?: () => number;
  /** The queues whose delayed tasks it moves when due. Default: every queue the Huey knows. */
  queues?: readonly string[];
}

const MINUTE = 60_000;

/** The key whose value is the last minute (ms) for which a periodic task was enqueued. */
export const periodicMarkKey = (taskName: string) => `periodic.${taskName}`;

/**
 * Moves due delayed tasks onto the queue every interval, and enqueues each
 * periodic task once in every minute its schedule accepts.
 *
 * Both steps are safe with several consumers on one storage: due tasks move
 * in one atomic storage step, and a periodic task's minute is claimed by
 * raising a high-water mark that only one scheduler can raise.
 */
export class Scheduler {
  readonly interval: number;
  readonly periodic: boolean;
  private readonly now: () => number;
  private lastMinute = -1;
  /** The eta of the soonest task left in the schedule at the last look, so the next look can be then rather than a tick later. */
  private nextDue: number | null = null;
  private timer?: NodeJS.Timeout;
  private ticking?: Promise<void>;
  private readonly queues: readonly string[];

  constructor(
    readonly huey: Huey,
    options: SchedulerOptions = {},
  ) {
    this.interval = options.interval ?? 1;
    this.periodic = options.periodic ?? true;
    this.now = options.now ?? Date.now;
    this.queues = options.queues ?? huey.queueNames;
    if (!(this.interval > 0 && this.interval <= 60)) throw new RangeError('the scheduler interval must be between 0 and 60 seconds');
  }

  start(): void {
    const loop = () => {
      this.ticking = this.tick()
        .catch((error) => this.huey.logger.error(`scheduler: ${error instanceof Error ? error.message : String(error)}`))
        .finally(() => {
          if (this.timer !== undefined) this.timer = setTimeout(loop, this.delayToNextTick());
        });
    };
    this.timer = setTimeout(loop, 0);
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.ticking;
  }

  /**
   * Ticks line up with the wall clock so that a new minute is seen right
   * after it starts; a delayed task due before the next tick is looked for
   * at its eta, so it runs on time (and its expiry, counted from then, is not
   * eaten by the wait for a tick).
   */
  private delayToNextTick(): number {
    const ms = this.interval * 1000;
    const now = this.now();
    const tick = ms - (now % ms);
    // A past eta (a message whose eta is not its place in the schedule) waits for the tick, not a busy loop.
    return this.nextDue === null || this.nextDue <= now ? tick : Math.min(tick, this.nextDue - now);
  }

  /** One look: move what is due, and at a new minute, enqueue periodic tasks. */
  async tick(): Promise<void> {
    const now = this.now();
    // Each queue (each shard) has a schedule of its own.
    let moved = 0;
    let next: number | null = null;
    for (const queue of this.queues) {
      for (const storage of this.huey.queueStorages(queue)) {
        const due = await storage.enqueueDue(now);
        moved += due.moved;
        if (due.next !== null && (next === null || due.next < next)) next = due.next;
      }
    }
    if (moved > 0) this.huey.logger.debug(`scheduler: enqueued ${moved} due task(s)`);
    this.nextDue = next;
    const minute = now - (now % MINUTE);
    if (this.periodic && minute !== this.lastMinute) {
      this.lastMinute = minute;
      await this.enqueuePeriodic(minute);
    }
  }

  /** Enqueue every periodic task whose schedule accepts `minute` and whose minute no other scheduler took. */
  async enqueuePeriodic(minute: number): Promise<string[]> {
    const at = DateTime.fromMillis(minute, { zone: 'utc' });
    const enqueued: string[] = [];
    for (const definition of this.huey.periodicTasks()) {
      if (!definition.periodic!(at)) continue;
      if (!(await this.huey.storage.putIfGreater(periodicMarkKey(definition.name), minute))) continue;
      const message = definition.message(randomUUID(), [], {}, this.now());
      await this.huey.enqueue(message);
      this.huey.logger.info(`scheduler: enqueued periodic task ${definition.name} ${message.id}`);
      enqueued.push(definition.name);
    }
    return enqueued;
  }
}
