import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DateTime } from 'luxon';
import { JsonSerializer, SerializationError } from '../src/index.js';

const serializer = new JsonSerializer();
const roundTrip = (value: unknown) => serializer.deserialize(serializer.serialize(value));

describe('JsonSerializer', () => {
  it('round-trips the types JSON lacks', () => {
    const value = {
      date: new Date('2026-01-02T03:04:05.678Z'),
      big: 12345678901234567890n,
      map: new Map<unknown, unknown>([['a', 1], [2, new Set([1, 2])]]),
      set: new Set(['x', 'y']),
      buffer: Buffer.from('hello'),
      bytes: new Uint8Array([1, 2, 255]),
      missing: undefined,
      list: [1, undefined, null, 'two'],
      nan: Number.NaN,
      inf: -Infinity,
      negativeZero: -0,
      tagLookalike: { $t: 'date', v: 'not a date' },
    };
    const back = roundTrip(value) as typeof value;
    assert.deepStrictEqual(back, value);
    assert.ok(Buffer.isBuffer(back.buffer));
    assert.ok(!Buffer.isBuffer(back.bytes) && back.bytes instanceof Uint8Array);
    assert.ok('missing' in back);
  });

  it('keeps an Error as data', () => {
    const error = new TypeError('bad thing');
    const back = roundTrip(error) as Error;
    assert.equal(back.name, 'TypeError');
    assert.equal(back.message, 'bad thing');
    assert.equal(back.stack, error.stack);
  });

  it('sends objects with toJSON as their JSON form', () => {
    const dt = DateTime.fromISO('2026-05-01T10:00:00Z', { zone: 'utc' });
    assert.equal((roundTrip({ dt }) as object).constructor, Object);
    assert.deepStrictEqual(roundTrip({ dt }), { dt: dt.toJSON() });
  });

  it('names the path of a function or a cycle', () => {
    assert.throws(() => serializer.serialize({ args: [1, { cb: () => 1 }] }), (error: Error) => {
      assert.ok(error instanceof SerializationError);
      assert.match(error.message, /args\[1\]\.cb is a function/);
      return true;
    });
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    assert.throws(() => serializer.serialize(cyclic), /self refers back to itself/);
    // The same object twice is not a cycle.
    const shared = { x: 1 };
    assert.deepStrictEqual(roundTrip([shared, shared]), [{ x: 1 }, { x: 1 }]);
  });

  it('rejects a corrupt payload and an unknown tag with a clear error', () => {
    assert.throws(() => serializer.deserialize('{not json'), SerializationError);
    assert.throws(() => serializer.deserialize('{"$t":"code","v":"process.exit()"}'), /unknown tag "code"/);
  });
});
