import { DateTime } from 'luxon';
import { ConfigurationError, SerializationError } from './errors.js';
import type { Message } from './message.js';
import { isStorableText } from './storable-text.js';

/*
 * Every number that sets when or how often a task runs is checked where it
 * enters: task options at definition, per-call options at the call, and
 * message fields when a message is read from the storage. JavaScript does
 * not stop a string, NaN, Infinity or 1e300 from reaching the arithmetic,
 * and there each fails quietly: a comparison with NaN is false, so an eta of
 * "tomorrow" runs at once; setTimeout takes a delay over 2^31 - 1 ms as 1 ms,
 * so a huge timeout times out at once; Infinity retries never end.
 */

/** The most retries a task may have: far more than any real use, far fewer than a loop without end. */
export const MAX_RETRIES = 1_000_000;

/**
 * The longest `timeout`, in seconds (about 23 days): setTimeout cannot wait
 * past 2^31 - 1 ms (24.8 days), and the consumer adds a margin to it.
 */
export const MAX_TIMEOUT = 2_000_000;

/** The latest time a Date can hold, in ms since the epoch; an eta or expiry past it is no time at all. */
export const MAX_TIME = 8.64e15;

/**
 * The most seconds a delay, an expiry or a retry's wait may run (about 31,700
 * years): any more and the time it lands on is past what a Date can hold.
 */
export const MAX_SECONDS = 1e12;

/**
 * What an instance name may be, on every storage: letters, digits, `_`,
 * `-` and `.`, starting with a letter or digit, at most 64. Each storage
 * uses the name as it is (Redis keys `huey.{name}.*`, SQLite tables
 * `huey_<name>_*`), so two different names never share a queue, and a name
 * that works on one storage works on all.
 */
const INSTANCE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** The queue every task without a `queue` of its own goes to: the instance's own storage. */
export const DEFAULT_QUEUE = 'default';

/** The most shards one queue may be spread over. */
export const MAX_SHARDS = 256;

/**
 * A queue name follows the instance-name rule: it becomes part of key and
 * table names (`huey.{app:emails}`, `huey_app:emails_*`).
 */
const queueNameRule = (value: unknown): string | null =>
  typeof value === 'string' && INSTANCE_NAME.test(value) ? null : 'a queue name: 1 to 64 letters, digits, "_", "-" or ".", starting with a letter or digit';

/** Refuse a queue name that cannot be one (a ConfigurationError naming `option`). */
export function checkQueueName(value: unknown, option = 'queue'): string {
  const problem = queueNameRule(value);
  if (problem !== null) fail(option, problem, value);
  return value as string;
}

/** Refuse an instance name outside the one rule every storage shares; see `INSTANCE_NAME`. */
export function checkInstanceName(name: unknown): void {
  if (typeof name !== 'string' || !INSTANCE_NAME.test(name)) {
    throw new ConfigurationError(
      `instance name must be 1 to 64 letters, digits, "_", "-" or ".", starting with a letter or digit (the same rule on every storage), not ${show(name)}`,
    );
  }
}

/** A value as an error message shows it. */
function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'an invalid Date' : `Date ${value.toISOString()}`;
  if (DateTime.isDateTime(value)) return value.isValid ? `DateTime ${value.toISO()}` : 'an invalid DateTime';
  if (Array.isArray(value)) return 'an array';
  if (value === null || typeof value !== 'object') return String(value);
  return `an object (${Object.getPrototypeOf(value)?.constructor?.name ?? 'Object'})`;
}

const isNumber = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);

/*
 * Each rule returns null when the value is fine, or what it must be instead.
 */

function retriesRule(value: unknown): string | null {
  return Number.isSafeInteger(value) && (value as number) >= 0 && (value as number) <= MAX_RETRIES ? null : `a whole number from 0 to ${MAX_RETRIES}`;
}

function nonNegativeRule(value: unknown): string | null {
  return isNumber(value) && value >= 0 ? null : 'a finite number, 0 or more';
}

function retryDelayRule(value: unknown): string | null {
  return isNumber(value) && value >= 0 && value <= MAX_SECONDS ? null : `a number of seconds from 0 to ${MAX_SECONDS}`;
}

function priorityRule(value: unknown): string | null {
  return isNumber(value) ? null : 'a finite number';
}

function timeoutRule(value: unknown): string | null {
  return isNumber(value) && value > 0 && value <= MAX_TIMEOUT ? null : `a number of seconds over 0 and at most ${MAX_TIMEOUT}`;
}

/** Seconds from now: `delay` (0 or less is now), or `expires` given as a number (over 0). */
function secondsFromNowRule(value: unknown, positive: boolean): string | null {
  if (isNumber(value) && Math.abs(value) <= MAX_SECONDS && (!positive || value > 0)) return null;
  return positive ? `a number of seconds over 0 and at most ${MAX_SECONDS}` : `a number of seconds, at most ${MAX_SECONDS}`;
}

function fail(option: string, rule: string, value: unknown): never {
  throw new ConfigurationError(`${option} must be ${rule}, not ${show(value)}`);
}

function check(options: Record<string, unknown>, option: string, rule: (value: unknown) => string | null): void {
  const value = options[option];
  if (value === undefined) return;
  const problem = rule(value);
  if (problem !== null) fail(option, problem, value);
}

/** The most tasks one task may depend on. */
export const MAX_PARENTS = 1000;

/** The longest deduplication key, in characters. */
export const MAX_KEY_LENGTH = 512;

function keyRule(value: unknown): string | null {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_KEY_LENGTH ? null : `a string of 1 to ${MAX_KEY_LENGTH} characters`;
}

/** Refuse a deduplication key that cannot be one (a ConfigurationError naming `what`). */
export function checkKey(value: unknown, what = 'key'): string {
  const problem = keyRule(value);
  if (problem !== null) fail(what, problem, value);
  return value as string;
}

function keyTtlRule(value: unknown): string | null {
  return isNumber(value) && value > 0 && value <= MAX_SECONDS ? null : `a number of seconds over 0 and at most ${MAX_SECONDS}`;
}

function booleanRule(value: unknown): string | null {
  return typeof value === 'boolean' ? null : 'true or false';
}

/** The options both a task definition and a call can set. */
function checkShared(options: Record<string, unknown>): void {
  check(options, 'debounce', booleanRule);
  check(options, 'keyTtl', keyTtlRule);
  check(options, 'retries', retriesRule);
  check(options, 'retryDelay', retryDelayRule);
  check(options, 'retryBackoff', nonNegativeRule);
  check(options, 'priority', priorityRule);
  check(options, 'timeout', timeoutRule);
  check(options, 'queue', queueNameRule);
  const expires = options.expires;
  if (expires !== undefined && !(expires instanceof Date && !Number.isNaN(expires.getTime()))) {
    const problem = secondsFromNowRule(expires, true);
    if (problem !== null) fail('expires', `${problem}, or a valid Date`, expires);
  }
}

/** Refuse task options that cannot work, naming the option. Throws `ConfigurationError`. */
export function checkTaskOptions(options: object): void {
  const record = options as Record<string, unknown>;
  if (record.name !== undefined && (typeof record.name !== 'string' || record.name === '')) fail('name', 'a non-empty string', record.name);
  if (record.context !== undefined && typeof record.context !== 'boolean') fail('context', 'true or false', record.context);
  if (record.key !== undefined && typeof record.key !== 'function') fail('key', 'a function of the call\'s arguments that returns the key (a string); a fixed key is given per call', record.key);
  checkShared(record);
  checkRetryWaits(record.retries ?? 0, record.retryDelay ?? 0, record.retryBackoff ?? 1);
}

/**
 * Refuse retry settings whose wait grows past `MAX_SECONDS` before the
 * retries run out: a retry would be scheduled for a time that never comes,
 * or carry a `retryDelay` that its message could not be read back with.
 */
export function checkRetryWaits(retries: unknown, retryDelay: unknown, retryBackoff: unknown): void {
  const [n, delay, backoff] = [retries as number, retryDelay as number, retryBackoff as number];
  if (n < 1 || delay === 0 || backoff <= 1) return;
  // Each retry multiplies the delay its message carries: after the last, it is delay × backoff^n.
  if (delay * backoff ** n > MAX_SECONDS) {
    throw new ConfigurationError(`retryBackoff ${backoff} with retryDelay ${delay} grows the wait past ${MAX_SECONDS} seconds within ${n} retries: lower retries or retryBackoff`);
  }
}

/**
 * A message's `eta` and `expires` for a run due at `eta` (null: now): an
 * expiry given in seconds counts from then, as in Huey, where a delayed or
 * retried task's expiry starts again when it falls due.
 */
export function dueAt(message: Message, eta: number | null, now = Date.now()): Message {
  const expiresIn = message.expiresIn;
  if (expiresIn === undefined || expiresIn === null) return { ...message, eta };
  return { ...message, eta, expires: (eta ?? now) + expiresIn * 1000 };
}

/** Refuse per-call options (`task.schedule({...})`, a signature's options) that cannot work, naming the option; see also `etaOf`. */
export function checkCallOptions(options: object): void {
  const record = options as Record<string, unknown>;
  if (record.args !== undefined && !Array.isArray(record.args)) fail('args', 'an array of the arguments', record.args);
  if (record.id !== undefined && (typeof record.id !== 'string' || record.id === '' || !isStorableText(record.id))) {
    fail('id', 'a non-empty string of whole characters (no lone surrogate, no NUL)', record.id);
  }
  check(record, 'key', keyRule);
  // delay and eta are checked as they are turned into a time, by etaOf.
  checkShared(record);
}

/**
 * A point in time given as a Date or a luxon DateTime, in ms since the epoch.
 * A number is refused rather than guessed at: seconds from now belong in
 * `delay`, and ms since the epoch would be read as one or the other.
 */
export function timeOf(value: unknown, option: string): number {
  if (value instanceof Date) {
    const time = value.getTime();
    if (Number.isNaN(time)) fail(option, 'a valid Date or luxon DateTime', value);
    return time;
  }
  if (DateTime.isDateTime(value)) {
    if (!value.isValid) fail(option, 'a valid Date or luxon DateTime', value);
    return value.toMillis();
  }
  if (typeof value === 'number') fail(option, 'a Date or a luxon DateTime (for seconds from now use delay)', value);
  return fail(option, 'a Date or a luxon DateTime', value);
}

/**
 * When a call with `eta` or `delay` (seconds; 0 or less is now) should run,
 * in ms since the epoch, or null for at once.
 */
export function etaOf(options: { delay?: unknown; eta?: unknown }, now = Date.now()): number | null {
  if (options.eta !== undefined) return timeOf(options.eta, 'eta');
  if (options.delay === undefined) return null;
  const problem = secondsFromNowRule(options.delay, false);
  if (problem !== null) fail('delay', problem, options.delay);
  return (options.delay as number) > 0 ? now + (options.delay as number) * 1000 : null;
}

// ---- messages read from the storage ----

function timeRule(value: unknown): string | null {
  return value === null || (isNumber(value) && Math.abs(value) <= MAX_TIME) ? null : 'null or a time in ms since the epoch';
}

const stringRule = (value: unknown): string | null => (typeof value === 'string' && value !== '' ? null : 'a non-empty string');

/** A message's fields, each with its rule and, for those a minimal message may leave out, the value it means. */
const MESSAGE_FIELDS: ReadonlyArray<[field: keyof Message, rule: (value: unknown) => string | null, missing?: unknown]> = [
  ['id', stringRule],
  ['name', stringRule],
  ['args', (value) => (Array.isArray(value) ? null : 'an array')],
  ['retries', retriesRule],
  ['retryDelay', retryDelayRule, 0],
  ['retryBackoff', nonNegativeRule, 1],
  ['priority', priorityRule, 0],
  ['eta', timeRule, null],
  ['expires', timeRule, null],
  // Absent from messages with a fixed expiry or none, and from those written before it existed.
  ['expiresIn', (value) => (value === undefined || value === null ? null : secondsFromNowRule(value, true))],
  // 0 ran as no limit before options were checked, and messages written then may carry it.
  ['timeout', (value) => (value === null || value === 0 ? null : timeoutRule(value)), null],
  // Absent from messages of the default queue, and from those written before queues existed.
  ['queue', (value) => (value === undefined ? null : queueNameRule(value))],
];

/** What is wrong with a message read back (naming the field), or null when it is a task message. */
function messageProblem(value: unknown, path: string): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return path ? `field "${path.slice(0, -1)}" must be a task message, not ${show(value)}` : `it is ${show(value)}`;
  }
  const message = value as Record<string, unknown>;
  for (const [field, rule, missing] of MESSAGE_FIELDS) {
    const fieldValue = message[field];
    if (fieldValue === undefined && missing !== undefined) {
      // Messages written by hand or by an older version may leave these out; they mean the default.
      message[field] = missing;
      continue;
    }
    const problem = rule(fieldValue);
    if (problem !== null) return `field "${path}${field}" must be ${problem}, not ${show(fieldValue)}`;
  }
  const headers = message.headers;
  if (headers !== undefined) {
    if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) return `field "${path}headers" must be an object of strings, not ${show(headers)}`;
    for (const [key, header] of Object.entries(headers)) {
      if (typeof header !== 'string') return `field "${path}headers.${key}" must be a string, not ${show(header)}`;
    }
  }
  const dedupe = message.dedupe as Record<string, unknown> | undefined;
  if (dedupe !== undefined) {
    if (typeof dedupe !== 'object' || dedupe === null || Array.isArray(dedupe)) return `field "${path}dedupe" must be an object, not ${show(dedupe)}`;
    for (const [field, rule] of [['key', keyRule], ['debounce', booleanRule], ['ttl', keyTtlRule]] as const) {
      if (field !== 'key' && dedupe[field] === undefined) continue;
      const problem = rule(dedupe[field]);
      if (problem !== null) return `field "${path}dedupe.${field}" must be ${problem}, not ${show(dedupe[field])}`;
    }
  }
  const parents = message.dependsOn;
  if (parents !== undefined) {
    if (!Array.isArray(parents) || parents.length > MAX_PARENTS) return `field "${path}dependsOn" must be a list of at most ${MAX_PARENTS} tasks, not ${show(parents)}`;
    for (const [i, parent] of parents.entries()) {
      const { id, queue } = (parent ?? {}) as { id?: unknown; queue?: unknown };
      if (stringRule(id) !== null || (queue !== undefined && queueNameRule(queue) !== null)) return `field "${path}dependsOn.${i}" must be { id, queue? } of a task, not ${show(parent)}`;
    }
  }
  if (message.runOnParentFailure !== undefined && typeof message.runOnParentFailure !== 'boolean') return `field "${path}runOnParentFailure" must be true or false, not ${show(message.runOnParentFailure)}`;
  if (message.deferrals !== undefined && !(Number.isSafeInteger(message.deferrals) && (message.deferrals as number) >= 0)) return `field "${path}deferrals" must be a whole number, not ${show(message.deferrals)}`;
  for (const follower of ['onComplete', 'onError'] as const) {
    if (message[follower] !== undefined) {
      const problem = messageProblem(message[follower], `${path}${follower}.`);
      if (problem !== null) return problem;
    }
  }
  const chord = message.chord as Record<string, unknown> | undefined;
  if (chord !== undefined) {
    if (typeof chord !== 'object' || chord === null) return `field "${path}chord" must be an object, not ${show(chord)}`;
    if (stringRule(chord.id) !== null) return `field "${path}chord.id" must be a non-empty string, not ${show(chord.id)}`;
    if (!Number.isSafeInteger(chord.size) || (chord.size as number) < 1) return `field "${path}chord.size" must be a whole number over 0, not ${show(chord.size)}`;
    if (!Number.isSafeInteger(chord.index) || (chord.index as number) < 0 || (chord.index as number) >= (chord.size as number)) {
      return `field "${path}chord.index" must be a whole number from 0 to size - 1, not ${show(chord.index)}`;
    }
    const problem = messageProblem(chord.callback, `${path}chord.callback.`);
    if (problem !== null) return problem;
  }
  return null;
}

/**
 * Check a value read back from the storage as a task message, filling in
 * the defaults of fields a minimal message leaves out. A wrong-shaped field
 * throws `SerializationError` naming it, so the worker dead-letters the
 * message with that reason instead of running it wrongly.
 */
export function checkMessage(value: unknown): Message {
  const problem = messageProblem(value, '');
  if (problem !== null) throw new SerializationError(`payload is not a valid task message: ${problem}`);
  return value as Message;
}
