import type { Huey } from '../huey.js';
import type { Claim, ClaimPeek, Storage } from '../storage/storage.js';

/** One storage a worker takes messages from: a queue, or one shard of a sharded queue. */
export interface Source {
  readonly queue: string;
  readonly storage: Storage;
}

/** Messages claimed from one source in one step. */
export interface Take {
  readonly source: Source;
  readonly claims: Claim[];
}

/** A blocking dequeue left waiting on one source, and what it brought once it ended. */
interface Wait {
  readonly done: Promise<void>;
  claims?: Claim[];
  error?: unknown;
}

/**
 * Takes messages for one worker from its queues in strict order, as RQ's
 * `dequeue_any` does: always from the first queue in the list that has any
 * (a sharded queue's shards take turns, so none starves). With one queue it
 * is the storage's own claim, unchanged. With several, a worker that finds
 * them all empty waits on all at once: a blocking dequeue on each, left
 * waiting across calls, so an idle worker sends each queue one blocking
 * command per wait and no polls; what one brings is run in queue order.
 */
export class QueueReader {
  /** Sources grouped by queue, in the order served. */
  readonly groups: Source[][];
  readonly sources: Source[];
  /** Queues paused by themselves: skipped, and what a wait brings from them goes back. */
  paused = new Set<string>();
  private readonly waits = new Map<Source, Wait>();
  /** Turn of each sharded queue: the shard it starts looking at next. */
  private readonly turns = new Map<string, number>();
  /** The last take found every queue empty: the next goes straight to waiting, as waits take what is there. */
  private idle = false;
  /** Inside `take`: what a wait brings now is this worker's to run. */
  private taking = false;
  /** A failure met outside `collect` (a give-back that failed), thrown by the next take. */
  private failure?: { error: unknown };

  /**
   * What a claim also reads where the storage can: the messages' revocation
   * flags. They live in the instance's storage, so only its own claims peek;
   * a named queue's or a shard's claims read them in a step of their own.
   */
  private readonly peek: ClaimPeek;
  private readonly flagsStorage: Storage;

  constructor(
    huey: Huey,
    private readonly workerId: string,
    queues: readonly string[],
  ) {
    this.groups = queues.map((queue) => huey.queueStorages(queue).map((storage) => ({ queue, storage })));
    this.sources = this.groups.flat();
    this.peek = huey.revocationPeek;
    this.flagsStorage = huey.storage;
  }

  private peekOf(source: Source): ClaimPeek | undefined {
    return source.storage === this.flagsStorage ? this.peek : undefined;
  }

  /** The queue names, in the order served. */
  get queues(): string[] {
    return this.groups.map((group) => group[0]!.queue);
  }

  /** True when every queue of this worker is paused by itself: the worker then waits as for a whole pause. */
  get allPaused(): boolean {
    return this.groups.every((group) => this.paused.has(group[0]!.queue));
  }

  /** True when every source's storage can wait for work itself. */
  get blocking(): boolean {
    return this.sources.every((source) => source.storage.blocking);
  }

  /**
   * Claim up to `count` messages from the first queue in order that has any,
   * waiting up to `timeoutMs` for one on all of them when all are empty.
   */
  async take(count: number, timeoutMs: number): Promise<Take | null> {
    this.taking = true;
    try {
      return await this.takeNext(count, timeoutMs);
    } finally {
      this.taking = false;
      // What other waits brought meanwhile is of queues later in order: back to their fronts, for idle workers.
      await this.releaseBrought();
    }
  }

  /** Give back what ended waits brought and no take took. */
  private async releaseBrought(): Promise<void> {
    for (const [source, wait] of this.waits) {
      if (!wait.claims || wait.claims.length === 0) continue;
      this.waits.delete(source);
      try {
        await source.storage.release(wait.claims);
      } catch (error) {
        // Still claimed: the worker's next requeue (it is about to meet the same failure) puts them back.
        this.failure ??= { error };
      }
    }
  }

  private async takeNext(count: number, timeoutMs: number): Promise<Take | null> {
    const brought = await this.collect();
    if (brought) return brought;
    const active = this.sources.filter((source) => !this.paused.has(source.queue));
    if (active.length === 0) return null;
    if (active.length === 1 && this.waits.size === 0) {
      // One queue: the storage's own claim, which waits by itself.
      const source = active[0]!;
      const claims = await source.storage.dequeueMany(this.workerId, count, timeoutMs, this.peekOf(source));
      return claims.length > 0 ? { source, claims } : null;
    }
    if (!this.idle || timeoutMs <= 0) {
      for (const group of this.groups) {
        if (this.paused.has(group[0]!.queue)) continue;
        for (const source of this.inTurn(group)) {
          if (this.waits.has(source)) continue;
          const claims = await source.storage.dequeueMany(this.workerId, count, 0, this.peekOf(source));
          if (claims.length > 0) {
            this.idle = false;
            return { source, claims };
          }
        }
      }
    }
    if (timeoutMs <= 0) return null;
    for (const source of active) {
      if (!this.waits.has(source)) this.waits.set(source, this.wait(source, count, timeoutMs));
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    await Promise.race([timedOut, ...[...this.waits.values()].map((wait) => wait.done)]);
    clearTimeout(timer);
    const taken = await this.collect();
    this.idle = taken === null;
    return taken;
  }

  /**
   * A blocking dequeue on one source, recording what it brings. What it
   * brings while the worker is busy (it took from another queue meanwhile)
   * goes straight back to the front of its queue, for an idle worker: this
   * one may be busy for long.
   */
  private wait(source: Source, count: number, timeoutMs: number): Wait {
    const wait: { done?: Promise<void>; claims?: Claim[]; error?: unknown } = {};
    wait.done = source.storage.dequeueMany(this.workerId, count, timeoutMs, this.peekOf(source)).then(
      async (claims) => {
        if (claims.length > 0 && !this.taking) {
          try {
            await source.storage.release(claims);
            claims = [];
          } catch {
            // Still claimed: run them after all.
          }
        }
        wait.claims = claims;
      },
      (error: unknown) => void (wait.error = error ?? new Error('dequeue failed')),
    );
    return wait as Wait;
  }

  /**
   * Claims that ended waits brought, from the first queue in order; waits
   * that brought nothing are forgotten, a failed one throws (after the
   * others are collected next time), and what came from a paused queue goes back.
   */
  private async collect(): Promise<Take | null> {
    let failure = this.failure;
    this.failure = undefined;
    let taken: Take | null = null;
    for (const source of this.sources) {
      const wait = this.waits.get(source);
      if (!wait || (wait.claims === undefined && wait.error === undefined)) continue;
      if (wait.error !== undefined) {
        this.waits.delete(source);
        failure ??= { error: wait.error };
        continue;
      }
      if (wait.claims!.length === 0) {
        this.waits.delete(source);
      } else if (this.paused.has(source.queue)) {
        this.waits.delete(source);
        await source.storage.release(wait.claims!);
      } else if (!taken) {
        this.waits.delete(source);
        taken = { source, claims: wait.claims! };
      }
    }
    if (failure) {
      // A failed wait (its reply lost: it may have claimed on the server) surfaces now, so the
      // worker puts back whatever it holds; what a wait did bring is put back with it.
      if (taken) this.waits.set(taken.source, { done: Promise.resolve(), claims: taken.claims });
      throw failure.error;
    }
    return taken;
  }

  /** The sources of one queue, starting at its turn (shards take turns). */
  private inTurn(group: Source[]): Source[] {
    if (group.length === 1) return group;
    const queue = group[0]!.queue;
    const turn = this.turns.get(queue) ?? 0;
    this.turns.set(queue, (turn + 1) % group.length);
    return [...group.slice(turn), ...group.slice(0, turn)];
  }

  /**
   * Let the waits still out end (within their timeout), and say whether any
   * brought claims: a stopping worker then puts them back with `requeue`.
   */
  async endWaits(): Promise<boolean> {
    const waits = [...this.waits.values()];
    this.waits.clear();
    await Promise.all(waits.map((wait) => wait.done));
    return waits.some((wait) => (wait.claims?.length ?? 0) > 0);
  }

  /** Put every message this worker holds claimed, on every source, back at the front. Returns how many. */
  async requeue(): Promise<number> {
    // Claims ended waits hold are among those put back: they must not also be run from here.
    for (const [source, wait] of this.waits) if (wait.claims !== undefined || wait.error !== undefined) this.waits.delete(source);
    let requeued = 0;
    for (const source of this.sources) requeued += await source.storage.requeue(this.workerId);
    return requeued;
  }
}
