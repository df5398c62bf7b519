import { types } from 'node:util';
import { SerializationError, TaskError, type RemoteError } from './errors.js';

/**
 * Turns task arguments and results into strings for the storage and back.
 * Data only: nothing read from a payload is ever run as code.
 */
export interface Serializer {
  serialize(value: unknown): string;
  deserialize(text: string): unknown;
}

/*
 * JSON has no Date, BigInt, Map, Set, bytes or undefined, so those travel as
 * small tagged objects: {"$t": "date", "v": "2026-01-01T00:00:00.000Z"}.
 * A plain object that happens to have a "$t" key is wrapped as {"$t": "obj"}
 * so that reading it back never mistakes it for a tag.
 */
const TAG = '$t';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function tagged(tag: string, v?: Json): Json {
  return v === undefined ? { [TAG]: tag } : { [TAG]: tag, v };
}

function describe(path: string): string {
  return path === '' ? 'the value' : path;
}

function encode(value: unknown, path: string, seen: Set<object>): Json {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      if (Number.isFinite(value)) return Object.is(value, -0) ? tagged('num', '-0') : value;
      return tagged('num', String(value));
    case 'undefined':
      return tagged('u');
    case 'bigint':
      return tagged('big', value.toString());
    case 'function':
      throw new SerializationError(`${describe(path)} is a function, and functions cannot be sent to a task`);
    case 'symbol':
      throw new SerializationError(`${describe(path)} is a symbol, and symbols cannot be sent to a task`);
  }
  if (value === null) return null;
  const object = value as object;
  if (seen.has(object)) throw new SerializationError(`${describe(path)} refers back to itself (a cycle)`);
  seen.add(object);
  try {
    return encodeObject(object, path, seen);
  } finally {
    seen.delete(object);
  }
}

function encodeObject(value: object, path: string, seen: Set<object>): Json {
  if (Array.isArray(value)) return value.map((item, i) => encode(item, `${path}[${i}]`, seen));
  if (value instanceof Date) {
    return tagged('date', Number.isNaN(value.getTime()) ? null : value.toISOString());
  }
  if (Buffer.isBuffer(value)) return tagged('buf', value.toString('base64'));
  if (value instanceof Uint8Array) return tagged('u8', Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64'));
  if (value instanceof Map) {
    return tagged('map', [...value].map(([k, v], i) => [encode(k, `${path}<key ${i}>`, seen), encode(v, `${path}.get(${String(k)})`, seen)]));
  }
  if (value instanceof Set) return tagged('set', [...value].map((v, i) => encode(v, `${path}<item ${i}>`, seen)));
  // A task's failure, handed to an error handler or a chord callback, arrives as the TaskError it is, remote error and all.
  if (value instanceof TaskError) return tagged('taskerr', { remote: encode({ ...value.remote }, `${path}.remote`, seen), stack: value.stack ?? null });
  if (value instanceof Error) {
    return tagged('err', { name: value.name, message: value.message, stack: value.stack ?? null });
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    // JSON's rule for new Number(1), new String('a'): the primitive inside.
    if (types.isBoxedPrimitive(value)) return encode(value.valueOf(), path, seen);
    const unreadable = opaqueKind(value);
    if (unreadable) throw new SerializationError(`${describe(path)} is ${unreadable}, and cannot be serialized`);
    // Class instances that know their JSON form (luxon's DateTime, URL, ...) travel as that.
    if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return encode((value as { toJSON(): unknown }).toJSON(), path, seen);
  }
  const out: { [key: string]: Json } = {};
  for (const [k, v] of Object.entries(value)) out[k] = encode(v, path === '' ? k : `${path}.${k}`, seen);
  return TAG in out ? tagged('obj', out) : out;
}

/**
 * The kind of a built-in object whose contents live where the serializer
 * cannot read them (or that stands for something unfinished), or null for
 * any other object. Written as its own properties, each would arrive as `{}`
 * or worse; better to fail, naming it, as for a function.
 */
function opaqueKind(value: object): string | null {
  if (value instanceof WeakMap) return 'a WeakMap (its entries cannot be read)';
  if (value instanceof WeakSet) return 'a WeakSet (its items cannot be read)';
  if (value instanceof WeakRef) return 'a WeakRef (send what it refers to)';
  if (value instanceof FinalizationRegistry) return 'a FinalizationRegistry';
  if (types.isPromise(value)) return 'a Promise (await it first)';
  if (types.isAnyArrayBuffer(value)) return 'an ArrayBuffer (send a Buffer or Uint8Array of it)';
  // Uint8Array and Buffer are handled before; the other views would arrive as objects keyed by index.
  if (ArrayBuffer.isView(value)) return `${/^[AEIOU]/.test(value.constructor.name) ? 'an' : 'a'} ${value.constructor.name} (send a Buffer or Uint8Array of its bytes, or an array)`;
  if (types.isRegExp(value)) return 'a RegExp (send its source)';
  if (types.isGeneratorObject(value) || types.isMapIterator(value) || types.isSetIterator(value)) return 'an iterator (send an array of it)';
  return null;
}

function decode(value: Json): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(decode);
  const tag = value[TAG];
  if (typeof tag !== 'string') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = decode(v);
    return out;
  }
  const v = value.v;
  switch (tag) {
    case 'u':
      return undefined;
    case 'num':
      return Number(v);
    case 'big':
      return BigInt(v as string);
    case 'date':
      return new Date(v === null ? Number.NaN : (v as string));
    case 'buf':
      return Buffer.from(v as string, 'base64');
    case 'u8':
      return new Uint8Array(Buffer.from(v as string, 'base64'));
    case 'map':
      return new Map((v as Json[][]).map(([k, item]) => [decode(k!), decode(item!)]));
    case 'set':
      return new Set((v as Json[]).map(decode));
    case 'taskerr': {
      const data = v as { remote: Json; stack: string | null };
      const error = new TaskError(decode(data.remote) as RemoteError);
      if (data.stack !== null) error.stack = data.stack;
      return error;
    }
    case 'err': {
      const data = v as { name: string; message: string; stack: string | null };
      const error = new Error(data.message);
      error.name = data.name;
      if (data.stack !== null) error.stack = data.stack;
      return error;
    }
    case 'obj': {
      const out: Record<string, unknown> = {};
      for (const [k, item] of Object.entries(v as Record<string, Json>)) out[k] = decode(item);
      return out;
    }
    default:
      throw new SerializationError(`unknown tag "${tag}" in payload`);
  }
}

/** Deeper than this, the fast check gives up and `encode` judges (it reports cycles clearly). */
const PLAIN_DEPTH_LIMIT = 64;

/**
 * True when JSON.stringify alone writes `value` faithfully: only strings,
 * finite numbers, booleans, null, arrays and plain objects without a "$t"
 * key. Most task arguments and results are like this, and skipping `encode`
 * for them saves a copy of every object (a worker's main cost after Redis).
 */
function isPlainJson(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(value) && !Object.is(value, -0);
    case 'object': {
      if (value === null) return true;
      if (depth >= PLAIN_DEPTH_LIMIT) return false;
      if (Array.isArray(value)) {
        for (const item of value) if (!isPlainJson(item, depth + 1)) return false;
        return true;
      }
      if (Object.getPrototypeOf(value) !== Object.prototype) return false;
      for (const key of Object.keys(value)) {
        if (key === TAG || !isPlainJson((value as Record<string, unknown>)[key], depth + 1)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

/** The default serializer: JSON that round-trips Date, BigInt, Map, Set, Buffer, Uint8Array, Error and undefined. */
export class JsonSerializer implements Serializer {
  serialize(value: unknown): string {
    return JSON.stringify(isPlainJson(value, 0) ? value : encode(value, '', new Set()));
  }

  deserialize(text: string): unknown {
    let parsed: Json;
    try {
      parsed = JSON.parse(text) as Json;
    } catch (error) {
      throw new SerializationError(`payload is not valid JSON: ${(error as Error).message}`);
    }
    // Without a tag anywhere in the text, the parsed value is already the answer.
    return text.includes(`"${TAG}"`) ? decode(parsed) : parsed;
  }
}
