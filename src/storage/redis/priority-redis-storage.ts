import type { Claim, ClaimPeek, DueMove } from '../storage.js';
import { scripts } from './lua-script.js';
import { peekedClaims, RedisStorage } from './redis-storage.js';

/** Most due messages moved by one scheduler step; the rest follow on the next. */
const ENQUEUE_DUE_BATCH = 1000;

/** `<16-digit sequence>|<data>` → data; `<score>|<sequence>|<data>` → data. */
const afterBars = (text: string, bars: number): string => {
  let at = -1;
  for (let i = 0; i < bars; i++) at = text.indexOf('|', at + 1);
  return text.slice(at + 1);
};

/**
 * Redis with priorities: the queue is a sorted set, so a higher `priority`
 * runs first and equal priorities stay first in, first out. Claims and acks
 * work as in RedisStorage. A sorted set cannot be popped into a list by a
 * blocking command, so idle workers wait on a small wake-up list that every
 * enqueue pushes to, and then claim with a script.
 */
export class PriorityRedisStorage extends RedisStorage {
  override readonly kind = 'redis (priority)';
  override readonly ordersByPriority = true;

  override enqueue(data: string, priority = 0): Promise<void> {
    return this.enqueueMany([{ data, priority }]);
  }

  override async enqueueMany(items: ReadonlyArray<{ data: string; priority?: number }>): Promise<void> {
    if (items.length === 0) return;
    const args = items.flatMap((item) => [item.priority ?? 0, item.data]);
    const { priorityQueue, prioritySequence, wake } = this.keys;
    this.sendRecords();
    await this.send((client) => scripts.priorityEnqueue.run(client, [priorityQueue, prioritySequence, wake], args));
  }

  override async dequeue(workerId: string, timeoutMs = 0): Promise<Claim | null> {
    return (await this.dequeueMany(workerId, 1, timeoutMs))[0] ?? null;
  }

  override async dequeueMany(workerId: string, count: number, timeoutMs = 0, peek?: ClaimPeek): Promise<Claim[]> {
    return this.guard(async () => {
      const claims = await this.claim(workerId, count, peek);
      if (claims.length > 0 || timeoutMs <= 0) return claims;
      // Wait for a wake-up; another worker may still win the message, which is fine.
      await this.runBlocking(workerId, (client) => client.blPop(this.keys.wake, timeoutMs / 1000));
      return this.claim(workerId, count, peek);
    });
  }

  private async claim(workerId: string, count: number, peek?: ClaimPeek): Promise<Claim[]> {
    const keys = [this.keys.priorityQueue, this.keys.claimed(workerId), this.keys.data];
    const args = peek ? [count, peek.byId, peek.byName] : [count];
    const items = (await this.send((client) => scripts.priorityClaim.run(client, keys, args))) as Array<string | null>;
    if (!peek) return items.map((receipt) => ({ data: afterBars(receipt!, 2), workerId, receipt: receipt! }));
    return peekedClaims(items, workerId).map((claim) => ({ ...claim, data: afterBars(claim.data, 2), receipt: claim.data }));
  }

  override async requeue(workerId: string): Promise<number> {
    return this.send(async (client) => {
      this.takeMarks(workerId);
      const keys = [this.keys.claimed(workerId), this.keys.priorityQueue, this.keys.started(workerId)];
      return Number(await scripts.priorityRequeue.run(client, keys));
    });
  }

  override async release(claims: readonly Claim[]): Promise<number> {
    const moved = await super.release(claims);
    // Idle workers wait on the wake-up list, not on the sorted set.
    // A few tokens wake every waiting worker, as priority-enqueue-3.lua keeps them.
    if (moved > 0) await this.send((client) => client.multi().lPush(this.keys.wake, '1').lTrim(this.keys.wake, 0, 63).exec());
    return moved;
  }

  protected override get queueMode(): 'zset' {
    return 'zset';
  }

  protected override get queueKey(): string {
    return this.keys.priorityQueue;
  }

  protected override claimOf(receipt: string, workerId: string): Claim {
    return { data: afterBars(receipt, 2), workerId, receipt };
  }

  override async claimed(workerId: string): Promise<Claim[]> {
    return this.guard(async () => {
      return (await super.claimed(workerId)).map(({ data: receipt }) => this.claimOf(receipt, workerId));
    });
  }

  override async queueSize(): Promise<number> {
    return this.send(async (client) => {
      return client.zCard(this.keys.priorityQueue);
    });
  }

  override async queueSizeByPriority(): Promise<Array<[number, number]>> {
    return this.send(async (client) => {
      const flat = (await scripts.priorityDepths.run(client, [this.keys.priorityQueue])) as number[];
      const depths: Array<[number, number]> = [];
      for (let i = 0; i < flat.length; i += 2) depths.push([Number(flat[i]), Number(flat[i + 1])]);
      return depths;
    });
  }

  override async enqueuedItems(limit = -1): Promise<string[]> {
    return this.send(async (client) => {
      const members = await client.zRange(this.keys.priorityQueue, 0, limit < 0 ? -1 : limit - 1);
      return members.map((member) => afterBars(member, 1));
    });
  }

  override async flushQueue(): Promise<void> {
    return this.send(async (client) => {
      await client.del(this.keys.priorityQueue);
    });
  }

  // Scheduled members carry their priority ("<priority>|<data>") for the move to the queue.

  /**
   * A retry due later goes in with its ack, in one step, as on the plain
   * queue; one due now enters the priority queue (its own script), then the
   * claim is acked: a consumer dying between the two runs that task twice.
   */
  override async retryAndAck(claim: Claim, data: string, eta: number | null, priority = 0): Promise<void> {
    if (eta !== null) return super.retryAndAck(claim, `${priority}|${data}`, eta);
    await this.enqueue(data, priority);
    await this.ack(claim);
  }

  override async addToSchedule(data: string, timestamp: number, priority = 0): Promise<void> {
    return this.guard(async () => {
      await super.addToSchedule(`${priority}|${data}`, timestamp);
    });
  }

  override async removeScheduled(data: string, priority = 0): Promise<boolean> {
    return super.removeScheduled(`${priority}|${data}`);
  }

  override async readSchedule(timestamp: number): Promise<string[]> {
    return this.guard(async () => {
      return (await super.readSchedule(timestamp)).map((member) => afterBars(member, 1));
    });
  }

  override async scheduledItems(limit = -1): Promise<string[]> {
    return this.guard(async () => {
      return (await super.scheduledItems(limit)).map((member) => afterBars(member, 1));
    });
  }

  override async enqueueDue(timestamp: number): Promise<DueMove> {
    return this.send(async (client) => {
      const { schedule, priorityQueue, prioritySequence, wake } = this.keys;
      let total = 0;
      for (;;) {
        const [moved, next] = (await scripts.priorityEnqueueDue.run(client, [schedule, priorityQueue, prioritySequence, wake], [timestamp, ENQUEUE_DUE_BATCH])) as [number, string?];
        total += Number(moved);
        if (Number(moved) < ENQUEUE_DUE_BATCH) return { moved: total, next: next === undefined ? null : Number(next) };
      }
    });
  }
}
