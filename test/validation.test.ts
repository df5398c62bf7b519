import 'reflect-metadata';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DateTime } from 'luxon';
import { ConfigurationError, JsonSerializer, MemoryHuey, RedisHuey, SerializationError, Signature, SqliteHuey, TaskError, type Huey } from '../src/index.js';
import { Worker } from '../src/consumer/worker.js';
import { startRedis, type TestRedis } from './support/redis-server.js';

// Every number that decides when or how often a task runs is checked where it
// enters: task options at definition, per-call options at the call, message
// fields as a worker reads them. And what the serializer cannot carry fails.

let redis: TestRedis;
let dir: string;

before(async () => {
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), 'huey-validation-'));
});

after(async () => {
  await redis.close();
  rmSync(dir, { recursive: true, force: true });
});

const noop = () => undefined;

/** A value a JavaScript caller (or a bad cast) could pass where the types say otherwise. */
const bad = <T>(value: unknown) => value as T;

describe('task options at definition', () => {
  const huey = new MemoryHuey('definitions');
  const refused: Array<[option: string, value: unknown]> = [
    ['retries', -1],
    ['retries', 1.5],
    ['retries', 1e999],
    ['retries', 1e7],
    ['retries', '3'],
    ['retryDelay', -1],
    ['retryDelay', Number.NaN],
    ['retryDelay', 'x'],
    ['retryDelay', 1e300],
    ['retryBackoff', -2],
    ['retryBackoff', Infinity],
    ['priority', Number.NaN],
    ['priority', '1'],
    ['timeout', 'abc'],
    ['timeout', -1],
    ['timeout', 0],
    ['timeout', Infinity],
    ['timeout', 1e10],
    ['expires', 0],
    ['expires', -5],
    ['expires', 'tomorrow'],
    ['expires', new Date('not a date')],
    ['expires', Infinity],
    ['name', 42],
    ['context', 'yes'],
    ['queue', 'has space'],
    ['queue', 7],
  ];
  for (const [option, value] of refused) {
    it(`refuses ${option}: ${String(value)}`, () => {
      assert.throws(() => huey.task(bad({ [option]: value }))(function task() {}), (error: Error) => {
        assert.ok(error instanceof ConfigurationError, String(error));
        assert.match(error.message, new RegExp(`^${option} must be`));
        return true;
      });
    });
  }

  it('refuses a decorated method with a bad option when its class is defined', () => {
    assert.throws(() => {
      class Tasks {
        @huey.task(bad({ timeout: 'abc' }))
        static run() {}
      }
      return Tasks;
    }, /timeout must be a number of seconds over 0/);
  });

  it('refuses retry waits that would grow past any date before the retries run out', () => {
    assert.throws(() => huey.task({ retries: 100, retryDelay: 10, retryBackoff: 2 })(function ballooning() {}), /^ConfigurationError: retryBackoff 2 with retryDelay 10 grows the wait past 1000000000000 seconds within 100 retries/);
    assert.doesNotThrow(() => huey.task({ retries: 10, retryDelay: 10, retryBackoff: 2 })(function doubling() {}));
  });

  it('accepts the limits themselves', () => {
    assert.doesNotThrow(() =>
      huey.task({ retries: 1_000_000, retryDelay: 0, retryBackoff: 0, priority: -5.5, timeout: 2_000_000, expires: new Date() })(function atLimits() {}),
    );
  });
});

describe('per-call options', () => {
  let huey: RedisHuey;
  let add: ReturnType<typeof define>;
  const define = (h: Huey) =>
    h.task({ retryDelay: 1, retryBackoff: 3 })(function add(a: number, b: number) {
      return a + b;
    });

  before(() => {
    huey = new RedisHuey(`calls-${randomUUID()}`, { url: redis.url });
    add = define(huey);
  });
  after(async () => {
    await huey.flush();
    await huey.close();
  });

  const refused: Array<[option: string, value: unknown, message: RegExp]> = [
    ['eta', 1e300, /^eta must be a Date or a luxon DateTime \(for seconds from now use delay\), not 1e\+300$/],
    ['eta', Date.now() + 60_000, /^eta must be a Date or a luxon DateTime/],
    ['eta', '2030-01-01T00:00:00Z', /^eta must be a Date or a luxon DateTime, not "2030-01-01T00:00:00Z"$/],
    ['eta', new Date(1e300), /^eta must be a valid Date or luxon DateTime, not an invalid Date$/],
    ['eta', DateTime.invalid('broken'), /^eta must be a valid Date or luxon DateTime, not an invalid DateTime$/],
    ['delay', 'abc', /^delay must be a number of seconds/],
    ['delay', Number.NaN, /^delay must be/],
    ['delay', Infinity, /^delay must be/],
    ['delay', 1e300, /^delay must be/],
    ['expires', '60', /^expires must be/],
    ['retries', -1, /^retries must be a whole number from 0 to 1000000, not -1$/],
    ['retries', 1e999, /^retries must be/],
    ['timeout', 'abc', /^timeout must be/],
    ['timeout', -1, /^timeout must be/],
    ['retryDelay', -1, /^retryDelay must be/],
    ['priority', 'high', /^priority must be/],
    ['id', 7, /^id must be a non-empty string/],
    ['args', 'x', /^args must be an array/],
    ['queue', 'x#1', /^queue must be a queue name/],
  ];
  for (const [option, value, message] of refused) {
    it(`refuses ${option}: ${String(value)}, and enqueues nothing`, async () => {
      assert.throws(() => add.schedule(bad({ args: [1, 2], [option]: value })), (error: Error) => {
        assert.ok(error instanceof ConfigurationError, String(error));
        assert.match(error.message, message);
        return true;
      });
      assert.equal(await huey.pendingCount(), 0);
      assert.equal(await huey.scheduledCount(), 0);
    });
  }

  it('checks per-call retries against the task’s delay and backoff', () => {
    assert.throws(() => add.schedule({ args: [1, 2], retries: 60 }), /retryBackoff 3 with retryDelay 1 grows the wait past \d+ seconds within 60 retries/);
  });

  it('refuses bad options of a signature and of a reschedule, before revoking anything', async () => {
    assert.throws(() => new Signature<number>(huey, 'add', [1, 2], bad({ timeout: -1 })), /timeout must be/);
    assert.throws(() => add.s(1, 2).with(bad({ timeout: -1 })), /timeout must be/);
    const r = add.schedule({ args: [1, 2], delay: 60 });
    await r.enqueued;
    await assert.rejects(r.reschedule(bad({ eta: 123 })), /eta must be a Date or a luxon DateTime/);
    assert.equal(await r.isRevoked(), false);
    await huey.flush();
  });

  it('keeps what worked: a delay of 0 or less runs now, a Date or DateTime schedules (neither is refused, as in Huey)', async () => {
    assert.throws(() => add.schedule({ args: [1, 2] }), /needs a delay \(seconds\) or an eta/);
    const now = add.schedule({ args: [1, 2], delay: 0 });
    const past = add.schedule({ args: [1, 2], delay: -5 });
    const later = add.schedule({ args: [1, 2], eta: DateTime.now().plus({ hours: 1 }) });
    const expiring = add.schedule({ args: [1, 2], delay: 10, expires: new Date(Date.now() + 60_000), timeout: 0.5, priority: 2.5 });
    await Promise.all([now.enqueued, past.enqueued, later.enqueued, expiring.enqueued]);
    assert.equal(now.message!.eta, null);
    assert.equal(past.message!.eta, null);
    assert.ok(later.message!.eta! > Date.now());
    assert.equal(await huey.pendingCount(), 2);
    assert.equal(await huey.scheduledCount(), 2);
    await huey.flush();
  });
});

/** A valid message of the task `record`, to spoil one field of. */
function message(id: string, fields: Record<string, unknown> = {}): Record<string, unknown> {
  return { id, name: 'record', args: [id], retries: 0, retryDelay: 0, retryBackoff: 1, priority: 0, eta: null, expires: null, timeout: null, ...fields };
}

/** Payloads with one wrong field each, as raw JSON, and the field the reason must name. */
function spoiled(): Array<[data: string, field: string]> {
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ eta: 1e300 }, 'eta'],
    [{ eta: '2030-01-01T00:00:00Z' }, 'eta'],
    [{ expires: 'tomorrow' }, 'expires'],
    [{ retries: -1 }, 'retries'],
    [{ retries: 1.5 }, 'retries'],
    [{ retries: { $t: 'num', v: 'Infinity' } }, 'retries'], // 1e999 as the serializer writes it
    [{ timeout: 'abc' }, 'timeout'],
    [{ timeout: -1 }, 'timeout'],
    [{ retryDelay: 'x' }, 'retryDelay'],
    [{ retryBackoff: -1 }, 'retryBackoff'],
    [{ priority: 'high' }, 'priority'],
    [{ args: 'x' }, 'args'],
    [{ name: 42 }, 'name'],
    [{ headers: { trace: 1 } }, 'headers.trace'],
    [{ queue: 5 }, 'queue'],
    [{ queue: 'a:b' }, 'queue'],
    [{ onComplete: message('next', { queue: '' }) }, 'onComplete.queue'],
    [{ onComplete: message('next', { eta: 'soon' }) }, 'onComplete.eta'],
    [{ chord: { id: 'c', index: 5, size: 2, callback: message('cb') } }, 'chord.index'],
    [{ chord: { id: 'c', index: 0, size: 2, callback: message('cb', { retries: -3 }) } }, 'chord.callback.retries'],
  ];
  return cases.map(([fields, field], i) => [JSON.stringify(message(`bad-${i}`, fields)), field]);
}

for (const kind of ['redis', 'sqlite'] as const) {
  describe(`messages read by a worker (${kind})`, () => {
    it('dead-letters a message with a wrong-shaped field, naming the field, and runs none of them', async () => {
      const name = `read-${randomUUID()}`;
      const huey = kind === 'redis' ? new RedisHuey(name, { url: redis.url }) : new SqliteHuey(name, { filename: join(dir, `${name}.db`) });
      const ran: string[] = [];
      huey.task()(function record(tag: string) {
        ran.push(tag);
        return tag;
      });
      const worker = new Worker(huey, `${kind}-worker`);
      try {
        const payloads = spoiled();
        for (const [data] of payloads) await huey.storage.enqueue(data);
        // A minimal message (as written by hand, or by an older version) still runs, with the defaults.
        await huey.storage.enqueue(JSON.stringify({ id: 'minimal', name: 'record', args: ['minimal'], retries: 0 }));
        while ((await worker.runOnce()) > 0);

        assert.deepEqual(ran, ['minimal']);
        assert.equal(await huey.result('minimal').get(), 'minimal');
        const letters = await huey.storage.deadLetters();
        assert.equal(letters.length, payloads.length);
        for (const [data, field] of payloads) {
          const letter = letters.find((l) => l.data === data);
          assert.ok(letter, `dead letter for ${data}`);
          assert.match(letter.reason, new RegExp(`^corrupt payload: SerializationError: payload is not a valid task message: field "${field.replace(/\./g, '\\.')}" must be`), data);
        }
      } finally {
        await huey.flush();
        await huey.close();
      }
    });
  });
}

describe('deserializeMessage', () => {
  const huey = new MemoryHuey('read');
  it('names the field in its error', () => {
    assert.throws(() => huey.deserializeMessage(JSON.stringify(message('x', { eta: 1e300 }))), (error: Error) => {
      assert.ok(error instanceof SerializationError);
      assert.equal(error.message, 'payload is not a valid task message: field "eta" must be null or a time in ms since the epoch, not 1e+300');
      return true;
    });
    assert.throws(() => huey.deserializeMessage('[1, 2]'), /payload is not a valid task message: it is an array/);
  });

  it('fills the defaults of fields a minimal message leaves out', () => {
    const read = huey.deserializeMessage(JSON.stringify({ id: 'm', name: 'record', args: [], retries: 2 }));
    assert.deepEqual(read, { id: 'm', name: 'record', args: [], retries: 2, retryDelay: 0, retryBackoff: 1, priority: 0, eta: null, expires: null, timeout: null });
  });

  it('reads a timeout of 0 as no limit, as messages written before the checks meant it', () => {
    assert.equal(huey.deserializeMessage(JSON.stringify(message('t', { timeout: 0 }))).timeout, 0);
  });
});

describe('values the serializer cannot carry', () => {
  const serializer = new JsonSerializer();
  const refused: Array<[value: unknown, message: RegExp]> = [
    [new WeakMap(), /^the value is a WeakMap \(its entries cannot be read\), and cannot be serialized$/],
    [{ a: { cache: new WeakSet() } }, /^a\.cache is a WeakSet/],
    [[1, new WeakRef({})], /^\[1\] is a WeakRef/],
    [{ pending: Promise.resolve(1) }, /^pending is a Promise \(await it first\)/],
    [{ registry: new FinalizationRegistry(noop) }, /^registry is a FinalizationRegistry/],
    [new Int32Array([1, 2]), /^the value is an Int32Array/],
    [new ArrayBuffer(4), /^the value is an ArrayBuffer/],
    [{ pattern: /x/g }, /^pattern is a RegExp/],
    [new Map([[1, 2]]).keys(), /^the value is an iterator/],
    // Past the plain-JSON fast path: an object of no prototype holding one.
    [Object.assign(Object.create(null), { inner: { weak: new WeakMap() } }), /^inner\.weak is a WeakMap/],
  ];
  for (const [value, message] of refused) {
    it(`refuses ${message.source}`, () => {
      assert.throws(() => serializer.serialize(value), (error: Error) => {
        assert.ok(error instanceof SerializationError, String(error));
        assert.match(error.message, message);
        return true;
      });
    });
  }

  it('writes boxed primitives as the primitive, as JSON does', () => {
    assert.deepEqual(serializer.deserialize(serializer.serialize({ n: new Number(3), s: new String('ab') })), { n: 3, s: 'ab' });
  });

  it('fails the call whose argument holds one, and the task whose return value does', async () => {
    const huey = new RedisHuey(`weak-${randomUUID()}`, { url: redis.url });
    const keep = huey.task()(function keep(value: unknown) {
      return value;
    });
    const weakly = huey.task()(function weakly() {
      return { cache: new WeakMap() };
    });
    try {
      assert.throws(() => keep({ cache: new WeakMap() }), /cannot enqueue task "keep": args\[0\]\.cache is a WeakMap/);
      const r = weakly();
      await r.enqueued;
      await new Worker(huey, 'weak-worker').runOnce();
      await assert.rejects(r.get(), (error: Error) => {
        assert.ok(error instanceof TaskError);
        assert.equal(error.remote.name, 'SerializationError');
        assert.match(error.remote.message, /returned a value that cannot be stored: value\.cache is a WeakMap/);
        return true;
      });
    } finally {
      await huey.flush();
      await huey.close();
    }
  });
});

describe('instance names', () => {
  it('follows one rule on every storage, refusing a bad name before anything is opened', () => {
    const flavors: Array<[string, (name: string) => unknown]> = [
      ['MemoryHuey', (name) => new MemoryHuey(name)],
      ['RedisHuey', (name) => new RedisHuey(name, { url: 'redis://127.0.0.1:1' })],
      ['SqliteHuey', (name) => new SqliteHuey(name, { filename: ':memory:' })],
    ];
    for (const [flavor, make] of flavors) {
      for (const bad of ['', 'my{app}', 'a b', '-leading', 'x'.repeat(65), 'page </script>', 'tab\there']) {
        assert.throws(() => make(bad), /instance name must be 1 to 64 letters, digits, "_", "-" or "\."/, `${flavor} refuses ${JSON.stringify(bad)}`);
      }
      for (const good of ['my-app', 'my_app', 'v1.2', 'A', 'x'.repeat(64)]) assert.ok(make(good), `${flavor} takes ${good}`);
    }
  });

  it('never lets two names share a queue: my-app and my_app in one SQLite file stay apart', async () => {
    const filename = join(tmpdir(), `huey-names-${randomUUID()}.db`);
    const dashed = new SqliteHuey('my-app', { filename });
    const underscored = new SqliteHuey('my_app', { filename });
    try {
      const task = dashed.task()(function named() {
        return 1;
      });
      await task().enqueued;
      assert.equal(await dashed.pendingCount(), 1);
      assert.equal(await underscored.pendingCount(), 0);
    } finally {
      await dashed.close();
      await underscored.close();
      rmSync(filename, { force: true });
      rmSync(`${filename}-wal`, { force: true });
      rmSync(`${filename}-shm`, { force: true });
    }
  });
});
