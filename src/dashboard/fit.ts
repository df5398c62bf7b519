import type { Snapshot } from './snapshot.js';

/** A list row larger than this has its large fields cut to a preview. */
const ROW_BYTES = 4096;
/** How much of such a field is kept. */
const FIELD_CHARS = 256;
/** Room kept for the `truncated` list itself. */
const NOTE_BYTES = 512;

/**
 * The snapshot as JSON of at most `maxBytes`: every open page gets it once
 * a second, so a queue of large tasks must not make it megabytes. Counts
 * (pending, scheduledCount, deadLetters) stay exact; when the whole does not
 * fit, rows larger than 4 KiB have their large fields cut to a preview (task
 * arguments, a stack), then the largest list is halved until it fits, and
 * `truncated` names the lists that were shortened.
 */
export function fitSnapshot(snapshot: Snapshot, maxBytes: number): string {
  const whole = JSON.stringify(snapshot);
  if (Buffer.byteLength(whole) <= maxBytes) return whole;

  const fitted: Record<string, unknown> = { ...snapshot };
  const cut = new Set<string>();
  // Each list as its entries and their sizes: an object (enqueued) is a list of [key, value].
  const lists = new Map<string, { entries: unknown[]; sizes: number[]; object: boolean }>();
  for (const [key, value] of Object.entries(snapshot)) {
    if (value === null || typeof value !== 'object') continue;
    const object = !Array.isArray(value);
    const entries = object ? Object.entries(value) : (value as unknown[]).map(shortenRow);
    if (!object && entries.some((entry, i) => entry !== (value as unknown[])[i])) cut.add(key);
    lists.set(key, { entries, sizes: entries.map((entry) => Buffer.byteLength(JSON.stringify(entry) ?? 'null') + 1), object });
  }
  const base = Buffer.byteLength(JSON.stringify(Object.fromEntries(Object.entries(snapshot).filter(([key]) => !lists.has(key)))));

  const render = () => {
    for (const [key, list] of lists) fitted[key] = list.object ? Object.fromEntries(list.entries as Array<[string, unknown]>) : list.entries;
    fitted.truncated = [...cut];
    return JSON.stringify(fitted);
  };
  const sum = (sizes: number[]) => sizes.reduce((a, b) => a + b, 0);
  for (;;) {
    // Measured only when the estimate says it fits: one JSON.stringify per try, not per halving.
    if (base + NOTE_BYTES + [...lists].reduce((total, [key, list]) => total + key.length + 4 + sum(list.sizes), 0) <= maxBytes) {
      const json = render();
      if (Buffer.byteLength(json) <= maxBytes) return json;
    }
    // Halve the largest list, keeping its head (the next tasks, the newest events).
    let largest: { key: string; bytes: number } | undefined;
    for (const [key, list] of lists) {
      if (list.entries.length > 0 && sum(list.sizes) > (largest?.bytes ?? 0)) largest = { key, bytes: sum(list.sizes) };
    }
    if (!largest) return render(); // nothing left to cut: only names and counts remain
    const list = lists.get(largest.key)!;
    const keep = Math.floor(list.entries.length / 2);
    list.entries = list.entries.slice(0, keep);
    list.sizes = list.sizes.slice(0, keep);
    cut.add(largest.key);
  }
}

/** A row with any field over FIELD_CHARS cut to a preview string, when the row is over ROW_BYTES. */
function shortenRow(row: unknown): unknown {
  if (Buffer.byteLength(JSON.stringify(row) ?? '') <= ROW_BYTES) return row;
  if (typeof row === 'string') return preview(row);
  if (row === null || typeof row !== 'object' || Array.isArray(row)) return preview(JSON.stringify(row));
  return Object.fromEntries(
    Object.entries(row).map(([key, value]) => {
      const text = typeof value === 'string' ? value : (JSON.stringify(value) ?? '');
      return [key, text.length > FIELD_CHARS ? preview(text) : value];
    }),
  );
}

const preview = (text: string): string => `${text.slice(0, FIELD_CHARS)}… (${text.length} characters, cut)`;
