import { randomBytes } from 'node:crypto';
import type { Huey } from './huey.js';
import type { Message } from './message.js';
import type { Claim, Storage } from './storage/storage.js';
import { DEFAULT_QUEUE } from './validate.js';

/** What `migrateQueues` moved (or, dry, would move), by `from → to` queue storage name. */
export interface Migration {
  /** Waiting messages moved, by `from → to`. */
  queued: Record<string, number>;
  /** Scheduled messages moved, by `from → to`. */
  scheduled: Record<string, number>;
  /** Messages looked at, in every queue and schedule. */
  seen: number;
}

/** Messages claimed per step while the queue is read through. */
const BATCH = 500;
/** How long the migration's claims stay its own if it dies: then a consumer puts them back. */
const LEASE_MS = 10 * 60_000;

/**
 * The queue a message belongs on now: the one it names, or, for a message
 * that names none (the default queue, or written before queues existed),
 * the queue its task now declares.
 */
export function queueOf(huey: Huey, message: Message): string {
  return message.queue ?? huey.definition(message.name)?.options.queue ?? DEFAULT_QUEUE;
}

/** `message` as it belongs on `queue`: the default queue is written as no queue at all. */
export function onQueue(message: Message, queue: string): Message {
  const { queue: _, ...rest } = message;
  return queue === DEFAULT_QUEUE ? rest : { ...rest, queue };
}

/**
 * Move every waiting and scheduled message of every queue `huey` knows to
 * the storage it belongs in now: after a task was given a queue (messages
 * enqueued before wait on the default queue), or a queue's shard count
 * changed (a message belongs to the shard its id hashes to). Consumers may
 * keep running: waiting messages are claimed by the migration (under a
 * lease, so a migration that dies gives them back), the movers enqueued
 * where they belong and acked, and the rest put back at the front in their
 * order. A scheduled message is added to its new schedule before it leaves
 * the old one; if a scheduler moved it to the queue meanwhile, the copy is
 * taken back. Dead letters stay where they are: retrying one
 * (`huey retry`, the dashboard) sends it to the queue it belongs on.
 * Messages that do not read back as task messages stay too.
 */
export async function migrateQueues(huey: Huey, options: { dryRun?: boolean; fromShards?: number } = {}): Promise<Migration> {
  const migration: Migration = { queued: {}, scheduled: {}, seen: 0 };
  const names = new Map<Storage, string>();
  for (const queue of huey.queueNames) {
    // A queue whose shards were cut keeps messages in shards past its count: read those too.
    const shards = Math.max(huey.shardCount(queue), options.fromShards ?? 1);
    for (let shard = 0; shard < shards; shard++) names.set(huey.storageFor(queue, shard), shard === 0 ? queue : `${queue}#${shard}`);
  }
  const count = (tally: Record<string, number>, from: Storage, to: Storage) => {
    const key = `${names.get(from)} → ${names.get(to) ?? '?'}`;
    tally[key] = (tally[key] ?? 0) + 1;
  };
  for (const storage of names.keys()) {
    await moveQueued(huey, storage, options.dryRun ?? false, migration, (to) => count(migration.queued, storage, to));
    await moveScheduled(huey, storage, options.dryRun ?? false, migration, (to) => count(migration.scheduled, storage, to));
  }
  return migration;
}

/** Where a stored message belongs, with the message as it should be written there; null when it stays or cannot be read. */
function destination(huey: Huey, from: Storage, data: string): { to: Storage; message: Message; data: string } | null {
  let message: Message;
  try {
    message = huey.deserializeMessage(data);
  } catch {
    return null;
  }
  const moved = onQueue(message, queueOf(huey, message));
  const to = huey.storageOf(moved);
  if (to === from) return null;
  return { to, message: moved, data: moved.queue === message.queue ? data : huey.serializeMessage(moved) };
}

async function moveQueued(huey: Huey, from: Storage, dryRun: boolean, migration: Migration, moved: (to: Storage) => void): Promise<void> {
  if (dryRun) {
    for (const data of await from.enqueuedItems()) {
      migration.seen++;
      const target = destination(huey, from, data);
      if (target) moved(target.to);
    }
    return;
  }
  // Each batch is claimed under an owner of its own, so that acking a mover looks through
  // that batch only, and what stays goes back in bulk: linear in the queue's length.
  const run = `migrate.${randomBytes(4).toString('hex')}`;
  const owners: string[] = [];
  try {
    for (;;) {
      const owner = `${run}.${owners.length}`;
      owners.push(owner);
      await from.renewLeases(owners, LEASE_MS);
      const claims: Claim[] = await from.dequeueMany(owner, BATCH, 0);
      if (claims.length === 0) break;
      for (const claim of claims) {
        migration.seen++;
        const target = destination(huey, from, claim.data);
        if (!target) continue;
        // Enqueued where it belongs before it leaves: a crash in between leaves a copy, never nothing.
        await target.to.enqueue(target.data, target.message.priority);
        await from.ack(claim);
        moved(target.to);
      }
    }
  } finally {
    // What stays goes back to the front in the order it was in, ahead of anything enqueued
    // meanwhile: the last batch first, so the first ends up in front.
    for (const owner of [...owners].reverse()) await from.requeue(owner);
    await from.dropLeases(owners);
  }
}

async function moveScheduled(huey: Huey, from: Storage, dryRun: boolean, migration: Migration, moved: (to: Storage) => void): Promise<void> {
  for (const data of await from.scheduledItems()) {
    migration.seen++;
    const target = destination(huey, from, data);
    if (!target) continue;
    const { to, message } = target;
    if (!dryRun) {
      await to.addToSchedule(target.data, message.eta ?? Date.now(), message.priority);
      if (!(await from.removeScheduled(data, message.priority))) {
        // A scheduler moved it to the old queue meanwhile: it runs from there, once.
        await to.removeScheduled(target.data, message.priority);
        continue;
      }
    }
    moved(to);
  }
}
