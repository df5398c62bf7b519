import { ConfigurationError } from './errors.js';
import { checkQueueName, DEFAULT_QUEUE, MAX_SHARDS } from './validate.js';

/** How `huey.queue(name, options)` sets up a named queue. */
export interface QueueOptions {
  /**
   * Spread the queue over this many shards, each with keys of its own (on a
   * Redis Cluster, a slot of its own, so a hot queue can use several
   * masters). A task's messages and result go to the shard its id hashes to;
   * consumers drain every shard. Order is first in, first out within a shard
   * only. Producers and consumers must declare the same count. @defaultValue 1
   */
  shards?: number;
}

/**
 * The queues an instance knows, in the order they became known (the
 * default queue first): those declared with `huey.queue()` and those its
 * tasks name. A consumer with no `-Q` serves them all, in this order.
 */
export class QueueRegistry {
  private readonly shards = new Map<string, number>([[DEFAULT_QUEUE, 1]]);
  private readonly declared = new Set<string>();

  /** Declare `name` with its shard count; declaring it again with another count is refused. */
  declare(name: string, options: QueueOptions = {}): void {
    checkQueueName(name);
    const shards = options.shards ?? 1;
    if (!Number.isSafeInteger(shards) || shards < 1 || shards > MAX_SHARDS) {
      throw new ConfigurationError(`shards of queue "${name}" must be a whole number from 1 to ${MAX_SHARDS}, not ${String(shards)}`);
    }
    if (this.declared.has(name) && this.shards.get(name) !== shards) {
      throw new ConfigurationError(`queue "${name}" is already declared with ${this.shards.get(name)} shard(s), not ${shards}`);
    }
    this.declared.add(name);
    this.shards.set(name, shards);
  }

  /** A queue named by a task: known from now on, with one shard unless declared otherwise. */
  note(name: string): void {
    if (!this.shards.has(name)) this.shards.set(name, 1);
  }

  get names(): string[] {
    return [...this.shards.keys()];
  }

  has(name: string): boolean {
    return this.shards.has(name);
  }

  shardCount(name: string): number {
    return this.shards.get(name) ?? 1;
  }

  /** The shard that task `id` of queue `name` lives in: its messages and its result. */
  shardOf(name: string, id: string): number {
    const count = this.shardCount(name);
    return count === 1 ? 0 : fnv1a(id) % count;
  }
}

/**
 * The storage name of shard `shard` of `queue`, as `Storage.forQueue` takes
 * it: the queue's name for its first shard (so a queue that grows shards
 * keeps its first), `name#n` for the others (`#` is in no queue name).
 */
export function shardName(queue: string, shard: number): string {
  return shard === 0 ? queue : `${queue}#${shard}`;
}

/** 32-bit FNV-1a of a string's UTF-16 units: cheap, stable across processes and versions. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
