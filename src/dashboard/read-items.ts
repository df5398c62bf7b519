import type { Huey } from '../huey.js';
import type { Message } from '../message.js';
import type { Storage } from '../storage/storage.js';

/**
 * A waiting item that does not read back as a task message: garbage pushed
 * into the queue by hand, a payload from another program. Shown for what it
 * is instead of failing the whole listing. `reason` and `preview` come from
 * the item itself, so they are untrusted text: short, with control
 * characters escaped, and put on a page or a terminal only as text.
 */
export interface CorruptItem {
  corrupt: true;
  reason: string;
  preview: string;
  /** The queue it sits in. */
  queue: string;
}

/** How much of a corrupt item's raw text is shown. */
const PREVIEW_CHARS = 120;

/**
 * Tasks waiting to run on `queue` (on every queue, in the order they are
 * known, when not given), next first; an item that cannot be read is a
 * `CorruptItem` in its place.
 */
export async function readPending(huey: Huey, limit?: number, queue?: string): Promise<Array<Message | CorruptItem>> {
  return readQueues(huey, limit, queue, (storage, left) => storage.enqueuedItems(left));
}

/** Tasks waiting for their time on `queue` (on every queue when not given), soonest first per queue; corrupt items as for `readPending`. */
export async function readScheduled(huey: Huey, limit?: number, queue?: string): Promise<Array<Message | CorruptItem>> {
  return readQueues(huey, limit, queue, (storage, left) => storage.scheduledItems(left));
}

async function readQueues(huey: Huey, limit: number | undefined, queue: string | undefined, read: (storage: Storage, left?: number) => Promise<string[]>) {
  const items: Array<Message | CorruptItem> = [];
  for (const source of huey.queueSources(queue)) {
    const left = limit === undefined ? undefined : limit - items.length;
    if (left !== undefined && left <= 0) break;
    items.push(...readEach(huey, await read(source.storage, left), source.queue));
  }
  return items;
}

export function isCorrupt(item: Message | CorruptItem): item is CorruptItem {
  return (item as CorruptItem).corrupt === true;
}

function readEach(huey: Huey, items: string[], queue: string): Array<Message | CorruptItem> {
  return items.map((data) => {
    try {
      return huey.deserializeMessage(data);
    } catch (error) {
      // JSON.parse quotes the input in its message: that part is untrusted too.
      const reason = error instanceof Error ? error.message : String(error);
      return { corrupt: true, reason: untrusted(reason, 2 * PREVIEW_CHARS), preview: untrusted(data, PREVIEW_CHARS), queue };
    }
  });
}

/**
 * At most `chars` characters of `text` (whole code points, "…" when cut),
 * with control and format characters written as \u escapes, so that no
 * terminal escape sequence, bidirectional override or line break gets
 * through to whoever reads it.
 */
export function untrusted(text: string, chars: number): string {
  const points = Array.from(text.slice(0, 2 * chars + 2));
  const cut = points.length > chars || text.length > 2 * chars + 2;
  const shown = points.slice(0, chars).join('');
  return escapeControls(shown) + (cut ? '…' : '');
}

/** `text` with control and format characters (terminal escapes, bidi overrides, line breaks) as \u escapes. */
export function escapeControls(text: string): string {
  return text.replace(/[\p{Cc}\p{Cf}\u2028\u2029]/gu, escape);
}

function escape(c: string): string {
  const code = c.codePointAt(0)!;
  return code > 0xffff ? `\\u{${code.toString(16)}}` : `\\u${code.toString(16).padStart(4, '0')}`;
}
