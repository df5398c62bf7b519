/**
 * Text every storage keeps as written: a lone surrogate (which has no UTF-8
 * form) and NUL (which PostgreSQL text cannot hold) become U+FFFD.
 */
export function storableText(text: string): string {
  // Node 20 has toWellFormed (ES2024); the ES2022 library this compiles against does not declare it.
  const whole = (text as string & { toWellFormed(): string }).toWellFormed();
  return whole.includes('\0') ? whole.replaceAll('\0', '\ufffd') : whole;
}

/** Whether every storage keeps `text` as written; see `storableText`. */
export function isStorableText(text: string): boolean {
  return storableText(text) === text;
}
