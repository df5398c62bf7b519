import { HueyError } from './errors.js';
import type { Huey } from './huey.js';
import type { Message } from './message.js';

/**
 * Deduplication by key (BullMQ's "simple mode", with its "replace" as
 * `debounce`): while a task called with a key is enqueued, scheduled or
 * running, another call with the same key joins it instead of enqueueing.
 *
 * The key is a value in the instance's key/value data, `dedupe.<key>`, set
 * with put-if-empty so that of two producers calling at once one wins. It
 * holds the task's id (and, for a debounced call waiting in the schedule, the
 * message as scheduled, so that a later call can take it out and put its own
 * in its place). The task's end releases it, compare-and-delete, so a release
 * never removes a later call's key. A key may carry a time to live, kept in
 * the value: a producer that dies between taking a key and enqueueing would
 * otherwise hold it for ever.
 */

/** What a key holds, as JSON. */
interface Held {
  id: string;
  /** When the key lapses (ms since the epoch), or null for never. */
  until: number | null;
  /** A debounced call waiting in the schedule: the message as scheduled, its queue and priority. */
  scheduled?: { data: string; queue?: string; priority: number };
}

/** What became of a keyed call. */
export type KeyedCall =
  /** The key was free and is now this call's: enqueue it. */
  | { kind: 'own' }
  /** Another call holds the key: this one joins it (its id). */
  | { kind: 'joined'; id: string }
  /** A debounced call replaced the waiting one, keeping its id: already written. */
  | { kind: 'replaced'; id: string };

/** Attempts at taking a key that keeps being released or lapsing under us, before joining whoever holds it. */
const ATTEMPTS = 5;

export const dedupeKey = (key: string): string => `dedupe.${key}`;

function heldValue(message: Message, data: string | undefined, now: number): string {
  const ttl = message.dedupe?.ttl;
  const held: Held = { id: message.id, until: ttl === undefined ? null : now + ttl * 1000 };
  // Only a debounced call due later can be replaced: one in the queue may be taken at any moment.
  if (data !== undefined && message.dedupe?.debounce && message.eta !== null && message.eta > now) {
    held.scheduled = { data, priority: message.priority, ...(message.queue === undefined ? {} : { queue: message.queue }) };
  }
  return JSON.stringify(held);
}

/** A key's value read back: data from storage, read defensively (null when it is not one of ours). */
function parseHeld(value: string): Held | null {
  try {
    const held = JSON.parse(value) as Held;
    return typeof held?.id === 'string' && (held.until === null || typeof held.until === 'number') ? held : null;
  } catch {
    return null;
  }
}

/**
 * Take `message`'s key for it, or join the call that holds it. A debounced
 * call whose holder still waits in the schedule takes the holder's place:
 * the holder is removed from the schedule (atomically: of two callers, or a
 * caller and the scheduler, one wins) and `write` puts this call in with the
 * holder's id, so every caller's Result reads the one run.
 */
export async function takeKey(huey: Huey, message: Message, data: string, write: (message: Message) => Promise<void>): Promise<KeyedCall> {
  const storage = huey.storage;
  const key = dedupeKey(message.dedupe!.key);
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const now = Date.now();
    if (await storage.putIfEmpty(key, heldValue(message, data, now))) return { kind: 'own' };
    const value = await storage.peekData(key);
    if (value === null) continue; // released meanwhile
    const held = parseHeld(value);
    if (held === null || (held.until !== null && held.until <= now)) {
      // Lapsed, or not a key of ours (written by hand): take it over, unless another caller did first.
      await storage.deleteIfEqual(key, value);
      continue;
    }
    if (message.dedupe?.debounce && held.scheduled && message.eta !== null && message.eta > now) {
      const { data: waiting, queue, priority } = held.scheduled;
      if (await huey.storageFor(queue).removeScheduled(waiting, priority)) {
        const replacement: Message = { ...message, id: held.id };
        const replacementData = huey.serializeMessage(replacement);
        await storage.putData(key, heldValue(replacement, replacementData, now));
        await write(replacement);
        return { kind: 'replaced', id: held.id };
      }
    }
    return { kind: 'joined', id: held.id };
  }
  throw new HueyError(`the key "${message.dedupe!.key}" of ${message.name} changed hands ${ATTEMPTS} times while this call tried to take or join it: call again`);
}

/** Release `message`'s key if this task still holds it (a later call's key is left alone). */
export async function releaseKey(huey: Huey, message: Message): Promise<void> {
  if (!message.dedupe) return;
  const key = dedupeKey(message.dedupe.key);
  const value = await huey.storage.peekData(key);
  if (value !== null && parseHeld(value)?.id === message.id) await huey.storage.deleteIfEqual(key, value);
}
