import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Storage } from '../../src/index.js';

/**
 * A named queue's storage for the conformance suite: closing it closes the
 * instance's storage it belongs to (which closes its queues' too).
 */
export function namedQueueStorage(home: Storage, queue: string): Storage {
  const storage = home.forQueue!(queue);
  const close = storage.close.bind(storage);
  storage.close = async () => {
    storage.close = close;
    await home.close();
  };
  return storage;
}

/**
 * One set of behaviours every storage must show. Each backend's test file
 * calls this with a factory that gives a fresh, empty storage.
 */
export function storageConformance(kind: string, make: () => Promise<Storage>, features: { peeksWithClaims?: boolean } = {}): void {
  describe(`${kind} storage conformance`, () => {
    let storage: Storage;
    beforeEach(async () => {
      storage = await make();
      await storage.connect();
      await storage.flushAll();
    });
    afterEach(async () => {
      await storage.flushAll();
      await storage.close();
    });

    it('queues first in, first out', async () => {
      await storage.enqueue('a');
      await storage.enqueueMany([{ data: 'b' }, { data: 'c' }]);
      assert.equal(await storage.queueSize(), 3);
      assert.deepEqual(await storage.enqueuedItems(), ['a', 'b', 'c']);
      assert.deepEqual(await storage.enqueuedItems(2), ['a', 'b']);
      const got = [];
      for (let i = 0; i < 3; i++) got.push((await storage.dequeue('w1'))?.data);
      assert.deepEqual(got, ['a', 'b', 'c']);
      assert.equal(await storage.dequeue('w1'), null);
    });

    it('runs higher priority first and keeps equal priorities in order, where it orders by priority', async () => {
      await storage.enqueue('low-1', 0);
      await storage.enqueue('high-1', 10);
      await storage.enqueueMany([{ data: 'low-2', priority: 0 }, { data: 'high-2', priority: 10 }, { data: 'negative', priority: -5 }]);
      await storage.enqueue('mid', 5);
      const expected = storage.ordersByPriority
        ? ['high-1', 'high-2', 'mid', 'low-1', 'low-2', 'negative']
        : ['low-1', 'high-1', 'low-2', 'high-2', 'negative', 'mid'];
      assert.deepEqual(await storage.enqueuedItems(), expected);
      // A claim put back keeps its place; a due scheduled message keeps its priority.
      const first = await storage.dequeue('w1');
      assert.equal(first?.data, expected[0]);
      await storage.requeue('w1');
      await storage.addToSchedule('scheduled-high', 1, 10);
      await storage.enqueueDue(10);
      assert.deepEqual(
        await storage.queueSizeByPriority(),
        storage.ordersByPriority ? [[10, 3], [5, 1], [0, 2], [-5, 1]] : null,
        'waiting messages by priority',
      );
      const drained = [];
      for (let claim = await storage.dequeue('w1'); claim; claim = await storage.dequeue('w1')) {
        drained.push(claim.data);
        await storage.ack(claim);
      }
      assert.deepEqual(drained, storage.ordersByPriority ? ['high-1', 'high-2', 'scheduled-high', 'mid', 'low-1', 'low-2', 'negative'] : [...expected, 'scheduled-high']);
      assert.deepEqual(await storage.claimed('w1'), []);
    });

    it('keeps a claimed message until it is acked', async () => {
      await storage.enqueue('m1');
      await storage.enqueue('m2');
      const claim = await storage.dequeue('w1');
      assert.equal(claim?.data, 'm1');
      assert.equal(claim?.workerId, 'w1');
      assert.equal(await storage.queueSize(), 1);
      assert.deepEqual((await storage.claimed('w1')).map((c) => c.data), ['m1']);
      await storage.ack(claim!);
      assert.deepEqual(await storage.claimed('w1'), []);
      assert.equal(await storage.queueSize(), 1);
      // Claims read back from the storage can be acked one by one.
      await storage.enqueue('m3');
      await storage.dequeue('w1');
      await storage.dequeue('w1');
      const [newest, oldest] = await storage.claimed('w1');
      assert.deepEqual([newest?.data, oldest?.data], ['m3', 'm2']);
      await storage.ack(oldest!);
      assert.deepEqual((await storage.claimed('w1')).map((c) => c.data), ['m3']);
      await storage.ack(newest!);
      assert.deepEqual(await storage.claimed('w1'), []);
    });

    it('claims several messages in one step, next to run first, each kept until acked', async () => {
      await storage.enqueueMany([{ data: 'low', priority: 0 }, { data: 'a', priority: 1 }, { data: 'b', priority: 1 }, { data: 'c', priority: 1 }]);
      const batch = await storage.dequeueMany('w1', 3);
      assert.deepEqual(
        batch.map((claim) => claim.data),
        storage.ordersByPriority ? ['a', 'b', 'c'] : ['low', 'a', 'b'],
      );
      assert.equal(await storage.queueSize(), 1);
      assert.equal((await storage.claimed('w1')).length, 3);
      await storage.ack(batch[1]!);
      assert.deepEqual(
        (await storage.claimed('w1')).map((claim) => claim.data).sort(),
        [batch[0]!.data, batch[2]!.data].sort(),
      );
      // Unacked claims of a batch go back to the front in their order.
      assert.equal(await storage.requeue('w1'), 2);
      assert.deepEqual((await storage.dequeueMany('w1', 10)).map((claim) => claim.data), storage.ordersByPriority ? ['a', 'c', 'low'] : ['low', 'b', 'c']);
      assert.deepEqual(await storage.dequeueMany('w1', 10), []);
    });

    it('peeks with a claim at the data keys of each message\'s id and task name, where it can, and acks as ever', async () => {
      const message = (id: string) => `{"id":"${id}","name":"job","args":[]}`;
      await storage.enqueueMany([{ data: message('one') }, { data: message('two') }, { data: 'not a message of ours' }]);
      await storage.putData('r:two', 'revoked');
      await storage.putData('rt:job', 'paused');
      const claims = await storage.dequeueMany('w1', 10, 0, { byId: 'r:', byName: 'rt:' });
      assert.deepEqual(claims.map((claim) => claim.data).sort(), [message('one'), message('two'), 'not a message of ours'].sort());
      const peeked = new Map(claims.map((claim) => [claim.data, claim.peeked]));
      // A storage that peeks reads both keys of a message it can read; one that does not leaves peeked out.
      if (features.peeksWithClaims) {
        assert.deepEqual(peeked.get(message('one')), { id: 'one', name: 'job', values: [null, 'paused'] });
        assert.deepEqual(peeked.get(message('two')), { id: 'two', name: 'job', values: ['revoked', 'paused'] });
      } else {
        assert.deepEqual([...peeked.values()], [undefined, undefined, undefined]);
      }
      assert.equal(peeked.get('not a message of ours'), undefined);
      for (const claim of claims) await storage.ack(claim);
      assert.deepEqual(await storage.claimed('w1'), []);
      assert.equal(await storage.queueSize(), 0);
    });

    it('keeps worker statuses, a capped event log, and lists data keys by prefix', async () => {
      await storage.putStatus('w1', 'one');
      await storage.putStatus('w2', 'two');
      await storage.putStatus('w1', 'one again');
      assert.deepEqual(await storage.statuses(), { w1: 'one again', w2: 'two' });
      await storage.dropStatus('w2');
      assert.deepEqual(await storage.statuses(), { w1: 'one again' });

      await storage.pushEvents(['a', 'b'], 3);
      await storage.pushEvents(['c', 'd'], 3);
      assert.deepEqual(await storage.events(), ['d', 'c', 'b']);
      assert.deepEqual(await storage.events(2), ['d', 'c']);

      await storage.enqueueMany([{ data: 'bad-1' }, { data: 'bad-2' }]);
      for (const claim of await storage.dequeueMany('w1', 2)) await storage.deadLetter(claim, 'unreadable');
      const [newest, oldest] = await storage.deadLetters();
      assert.equal(await storage.deadLetterCount(), 2);
      assert.equal(await storage.deleteDeadLetter(oldest!), true);
      assert.equal(await storage.deadLetterCount(), 1);
      assert.equal(await storage.deleteDeadLetter(oldest!), false);
      assert.deepEqual((await storage.deadLetters()).map((letter) => letter.data), [newest!.data]);

      await storage.putData('lock.x', '1');
      await storage.putData('lock.y*', '1');
      await storage.putData('r:1', '1');
      assert.deepEqual((await storage.dataKeys('lock.')).sort(), ['lock.x', 'lock.y*']);
      assert.deepEqual(await storage.dataKeys('lock.y*'), ['lock.y*']);
      assert.equal((await storage.dataKeys('lock.', 1)).length, 1);
      await storage.flushAll();
      assert.deepEqual(await storage.statuses(), {});
      assert.deepEqual(await storage.events(), []);
    });

    it('puts a worker\'s unacked claims back at the front, oldest first', async () => {
      await storage.enqueueMany([{ data: 'a' }, { data: 'b' }, { data: 'c' }]);
      await storage.dequeue('w1');
      await storage.dequeue('w1');
      assert.equal(await storage.requeue('w1'), 2);
      assert.deepEqual(await storage.claimed('w1'), []);
      assert.deepEqual(await storage.enqueuedItems(), ['a', 'b', 'c']);
    });

    it('waits for a message when blocking, and returns at once when not', async () => {
      if (!storage.blocking) {
        const started = Date.now();
        assert.equal(await storage.dequeue('w-block', 5000), null);
        assert.ok(Date.now() - started < 1000, 'a storage that cannot block does not wait');
        return;
      }
      const waiting = storage.dequeue('w-block', 5000);
      await storage.enqueue('late');
      assert.equal((await waiting)?.data, 'late');
      const started = Date.now();
      assert.equal(await storage.dequeue('w-block', 200), null);
      assert.ok(Date.now() - started >= 150, 'a blocking dequeue waits for its timeout');
    });

    /** Give short leases to `owners` and wait until they have run out. */
    async function expire(owners: string[]): Promise<void> {
      await storage.renewLeases(owners, 1);
      const deadline = Date.now() + 2000;
      while ((await storage.expiredLeases()).filter((id) => owners.includes(id)).length < owners.length) {
        assert.ok(Date.now() < deadline, 'the short leases run out');
      }
    }

    /** One turn of the event loop, then a round trip: marks a storage sends late have reached it. */
    async function marksSent(): Promise<void> {
      await new Promise((resolve) => setImmediate(resolve));
      await storage.queueSize();
    }

    it('hands the started claims of an owner whose lease ran out to one adopter, and puts the others back in front', async () => {
      await storage.enqueueMany([{ data: 'a' }, { data: 'b' }, { data: 'c' }, { data: 'd' }, { data: 'e' }]);
      await storage.renewLeases(['dead-consumer', 'dead-worker', 'live-worker'], 1);
      const [a, b, c] = await storage.dequeueMany('dead-worker', 3);
      await storage.dequeue('live-worker');
      storage.markStarted(a!);
      storage.markStarted(c!);
      await marksSent();
      await storage.renewLeases(['live-worker', 'adopter-1', 'adopter-2'], 60_000);
      await expire(['dead-consumer', 'dead-worker']);
      assert.deepEqual((await storage.expiredLeases()).sort(), ['dead-consumer', 'dead-worker']);
      // Two adopters race; one gets the claims, the other is told the lease is gone.
      const adoptions = await Promise.all([storage.adoptClaims('dead-worker', 'adopter-1', 5, 1), storage.adoptClaims('dead-worker', 'adopter-2', 5, 1)]);
      const won = adoptions.find((adoption) => adoption !== null);
      assert.equal(adoptions.filter((adoption) => adoption === null).length, 1);
      assert.deepEqual(won, { started: 2, requeued: 1, stalled: [] });
      const winner = adoptions[0] ? 'adopter-1' : 'adopter-2';
      assert.deepEqual((await storage.claimed(winner)).map((claim) => claim.data).sort(), ['a', 'c']);
      assert.deepEqual(await storage.claimed('dead-worker'), []);
      // The unstarted one is next in line, ahead of what was never claimed.
      assert.deepEqual(await storage.enqueuedItems(), ['b', 'e']);
      assert.equal(b?.data, 'b');
      assert.equal(await storage.adoptClaims('live-worker', 'adopter-1', 5, 1), null, 'a live lease is not adopted');
      assert.deepEqual(await storage.adoptClaims('dead-consumer', 'adopter-1', 5, 1), { started: 0, requeued: 0, stalled: [] });
      assert.deepEqual(await storage.expiredLeases(), []);
      for (const claim of await storage.claimed(winner)) await storage.ack(claim);
      await storage.dropLeases(['live-worker', 'adopter-1', 'adopter-2']);
      assert.deepEqual(await storage.expiredLeases(), []);
    });

    it('keeps an adopted claim marked started, should its adopter die in turn', async () => {
      await storage.enqueue('a');
      const claim = await storage.dequeue('first');
      storage.markStarted(claim!);
      await marksSent();
      await expire(['first']);
      assert.equal((await storage.adoptClaims('first', 'second', 5, 1))?.started, 1);
      await expire(['second']);
      assert.deepEqual(await storage.adoptClaims('second', 'third', 5, 1), { started: 1, requeued: 0, stalled: [] });
      assert.deepEqual((await storage.claimed('third')).map((c) => c.data), ['a']);
    });

    it('records a start that rides on the next ack of the same worker', async () => {
      await storage.enqueueMany([{ data: 'a' }, { data: 'b' }]);
      const [a, b] = await storage.dequeueMany('w1', 2);
      storage.markStarted(a!);
      storage.markStarted(b!);
      await storage.ack(a!); // sent before any turn of the event loop: it carries b's mark
      await expire(['w1']);
      assert.deepEqual(await storage.adoptClaims('w1', 'adopter', 5, 1), { started: 1, requeued: 0, stalled: [] });
      assert.deepEqual((await storage.claimed('adopter')).map((c) => c.data), ['b']);
    });

    it('fails a message put back unstarted more than the stall limit', async () => {
      await storage.enqueue('poison');
      for (let round = 1; round <= 3; round++) {
        const claim = await storage.dequeue(`consumer-${round}`);
        assert.equal(claim?.data, 'poison');
        await expire([`consumer-${round}`]);
        const adoption = await storage.adoptClaims(`consumer-${round}`, 'adopter', 2, 1);
        if (round <= 2) {
          assert.deepEqual(adoption, { started: 0, requeued: 1, stalled: [] }, `round ${round}`);
        } else {
          assert.equal(adoption?.requeued, 0);
          assert.deepEqual(adoption?.stalled.map((c) => c.data), ['poison']);
        }
      }
      assert.equal(await storage.queueSize(), 0);
      const [held] = await storage.claimed('adopter');
      assert.equal(held?.data, 'poison');
      await storage.ack(held!);
      assert.deepEqual(await storage.claimed('adopter'), []);
    });

    it('counts stalls only for the oldest unstarted claims, which may have been running', async () => {
      await storage.enqueueMany([{ data: 'a' }, { data: 'b' }, { data: 'c' }, { data: 'd' }]);
      const [a] = await storage.dequeueMany('dead', 4);
      storage.markStarted(a!);
      await marksSent();
      await expire(['dead']);
      // Two runs at once: a had started, b may have been starting; c and d were only claimed ahead.
      const adoption = await storage.adoptClaims('dead', 'adopter', 0, 2);
      assert.equal(adoption?.started, 1);
      assert.deepEqual(adoption?.stalled.map((claim) => claim.data), ['b']);
      assert.equal(adoption?.requeued, 2);
      assert.deepEqual(await storage.enqueuedItems(), ['c', 'd']);
    });

    it('gives back claims taken ahead, in front and in order, leaving the others claimed', async () => {
      await storage.enqueueMany([{ data: 'a' }, { data: 'b' }, { data: 'c' }, { data: 'd' }]);
      const [a, b, c] = await storage.dequeueMany('w1', 3);
      assert.equal(await storage.release([b!, c!]), 2);
      assert.deepEqual(await storage.enqueuedItems(), ['b', 'c', 'd']);
      assert.deepEqual((await storage.claimed('w1')).map((claim) => claim.data), ['a']);
      assert.equal(await storage.release([b!]), 0, 'a claim no longer held is skipped');
      await storage.ack(a!);
      assert.deepEqual(await storage.claimed('w1'), []);
    });

    it('dead-letters a claim with its reason', async () => {
      await storage.enqueue('bad');
      const claim = await storage.dequeue('w1');
      await storage.deadLetter(claim!, 'corrupt payload');
      assert.deepEqual(await storage.claimed('w1'), []);
      const [letter] = await storage.deadLetters();
      assert.equal(letter?.data, 'bad');
      assert.equal(letter?.reason, 'corrupt payload');
      assert.ok(typeof letter?.at === 'number');
    });

    it('flushes the queue', async () => {
      await storage.enqueue('x');
      await storage.flushQueue();
      assert.equal(await storage.queueSize(), 0);
    });

    it('schedules by time and hands out only what is due', async () => {
      await storage.addToSchedule('later', 3000);
      await storage.addToSchedule('soon', 1000);
      await storage.addToSchedule('middle', 2000);
      assert.equal(await storage.scheduleSize(), 3);
      assert.deepEqual(await storage.scheduledItems(), ['soon', 'middle', 'later']);
      assert.deepEqual(await storage.scheduledItems(1), ['soon']);
      assert.deepEqual(await storage.readSchedule(999), []);
      assert.deepEqual(await storage.readSchedule(2000), ['soon', 'middle']);
      assert.equal(await storage.scheduleSize(), 1);
      await storage.addToSchedule('far', 9000);
      assert.deepEqual(await storage.enqueueDue(5000), { moved: 1, next: 9000 }, 'with when the soonest left is due');
      assert.deepEqual(await storage.enqueuedItems(), ['later']);
      assert.deepEqual(await storage.enqueueDue(10_000), { moved: 1, next: null });
      await storage.flushQueue();
      await storage.addToSchedule('x', 1);
      await storage.flushSchedule();
      assert.equal(await storage.scheduleSize(), 0);
    });

    it('settles a claim with its retry in one step, to the queue or the schedule', async () => {
      assert.ok(storage.retryAndAck, 'every built-in storage retries and acks in one step');
      await storage.enqueue('first try', 3);
      const [claim] = await storage.dequeueMany('w-retry', 1);
      await storage.retryAndAck(claim!, 'second try', null, 3);
      assert.deepEqual(await storage.claimed('w-retry'), []);
      assert.deepEqual(await storage.enqueuedItems(), ['second try']);
      const [again] = await storage.dequeueMany('w-retry', 1);
      assert.equal(again?.data, 'second try');
      await storage.retryAndAck(again!, 'third try', 5000, 3);
      assert.deepEqual(await storage.claimed('w-retry'), []);
      assert.equal(await storage.queueSize(), 0);
      assert.deepEqual(await storage.scheduledItems(), ['third try']);
      assert.equal((await storage.enqueueDue(5000)).moved, 1);
      assert.deepEqual(await storage.enqueuedItems(), ['third try']);
    });

    it('moves each due message once even when schedulers race', async () => {
      await storage.enqueueMany([]);
      for (let i = 0; i < 50; i++) await storage.addToSchedule(`t${i}`, 100 + i);
      const moved = await Promise.all([storage.enqueueDue(1000), storage.enqueueDue(1000), storage.enqueueDue(1000)]);
      assert.equal(moved.reduce((total, move) => total + move.moved, 0), 50);
      assert.equal(await storage.queueSize(), 50);
    });

    it('stores, peeks, pops and deletes data', async () => {
      await storage.putData('k', 'v1');
      assert.equal(await storage.peekData('k'), 'v1');
      assert.equal(await storage.hasDataForKey('k'), true);
      await storage.putData('k', 'v2');
      assert.equal(await storage.popData('k'), 'v2');
      assert.equal(await storage.popData('k'), null);
      assert.equal(await storage.peekData('k'), null);
      assert.equal(await storage.hasDataForKey('k'), false);
      await storage.putData('d', '1');
      assert.deepEqual(await storage.peekDataMany(['d', 'none', 'd']), ['1', null, '1']);
      assert.equal(await storage.deleteData('d'), true);
      assert.equal(await storage.deleteData('d'), false);
    });

    it('puts only into an empty key, and deletes only an equal value', async () => {
      assert.equal(await storage.putIfEmpty('lock', 'me'), true);
      assert.equal(await storage.putIfEmpty('lock', 'you'), false);
      assert.equal(await storage.peekData('lock'), 'me');
      assert.equal(await storage.deleteIfEqual('lock', 'you'), false);
      assert.equal(await storage.deleteIfEqual('lock', 'me'), true);
      assert.equal(await storage.hasDataForKey('lock'), false);
    });

    it('stores results, with a time to live when asked, and notifies watchers where it can', async () => {
      const heard: string[] = [];
      const stop = await storage.watchResult('task-1', () => heard.push('task-1'));
      const stopOther = await storage.watchResult('task-2', () => heard.push('task-2'));
      const notifies = stop !== null;
      await storage.putResult('task-1', 'forever');
      await storage.putResult('task-3', 'brief', 50);
      const deadline = Date.now() + 2000;
      while (notifies && heard.length < 1) {
        assert.ok(Date.now() < deadline, 'the watcher heard of task-1');
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      assert.deepEqual(heard, notifies ? ['task-1'] : []);
      stop?.();
      await storage.putResult('task-1', 'again');
      stopOther?.();
      assert.equal(await storage.peekData('task-1'), 'again');
      assert.equal(await storage.peekData('task-3'), 'brief');
      while ((await storage.peekData('task-3')) !== null) assert.ok(Date.now() < deadline + 2000, 'a result with a time to live goes away');
      assert.equal(await storage.popData('task-1'), 'again');
      assert.equal(await storage.popData('task-1'), null);
      // A result can ack its claim in the same step.
      await storage.enqueue('task-5 message');
      const claim = await storage.dequeue('w-result');
      await storage.putResult('task-5', 'done', undefined, claim!);
      assert.deepEqual(await storage.claimed('w-result'), []);
      assert.equal(await storage.popData('task-5'), 'done');
      await storage.putResult('task-4', 'popped before it expired', 60_000);
      assert.equal(await storage.popData('task-4'), 'popped before it expired');
      assert.equal(await storage.peekData('task-4'), null);
      // A result stored again, with a time to live or without, replaces the one before, wherever that was kept.
      await storage.putResult('task-6', 'for a minute', 60_000);
      await storage.putResult('task-6', 'for good');
      assert.equal(await storage.popData('task-6'), 'for good');
      assert.equal(await storage.peekData('task-6'), null, 'nothing of the first is left');
      await storage.putResult('task-7', 'for good');
      await storage.putResult('task-7', 'for a minute', 60_000);
      assert.equal(await storage.popData('task-7'), 'for a minute');
      assert.equal(await storage.peekData('task-7'), null, 'nothing of the first is left');
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.deepEqual(heard, notifies ? ['task-1'] : [], 'a stopped watcher hears nothing more');
    });

    it('increments a counter atomically', async () => {
      const values = await Promise.all(Array.from({ length: 20 }, () => storage.increment('count')));
      assert.deepEqual([...values].sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i + 1));
      assert.equal(await storage.increment('count', 5), 25);
      assert.deepEqual(await storage.counters('count'), { count: 25 });
    });

    it('raises a high-water mark only upwards, once per value', async () => {
      assert.equal(await storage.putIfGreater('mark', 10), true);
      assert.equal(await storage.putIfGreater('mark', 10), false);
      assert.equal(await storage.putIfGreater('mark', 9), false);
      const racers = await Promise.all([11, 11, 11].map((v) => storage.putIfGreater('mark', v)));
      assert.deepEqual(racers.filter(Boolean).length, 1);
      assert.deepEqual(await storage.counters('mark'), { mark: 11 });
    });

    it('keeps counters apart from data of the same name', async () => {
      await storage.putResult('shared', 'a result');
      assert.equal(await storage.increment('shared', 2), 2);
      assert.equal(await storage.peekData('shared'), 'a result');
      assert.equal(await storage.putIfGreater('shared', 5), true);
      assert.equal(await storage.increment('shared'), 6);
      await storage.putData('shared', 'replaced');
      assert.equal(await storage.deleteData('shared'), true);
      assert.deepEqual(await storage.counters('shared'), { shared: 6 }, 'data writes and deletes leave the counter');
      assert.equal(await storage.putIfEmpty('shared', 'again'), true, 'a counter does not make its key look taken');
      assert.equal(await storage.deleteCounter('shared'), true);
      assert.equal(await storage.deleteCounter('shared'), false);
      assert.deepEqual(await storage.counters('shared'), {});
      assert.equal(await storage.peekData('shared'), 'again', 'deleting the counter leaves the data');
    });

    it('lists counters by prefix, never among the data, and keeps them through flushResults', async () => {
      await storage.increment('enqueued.a', 3);
      await storage.increment('enqueued.b');
      await storage.increment('enqueued*');
      await storage.putIfGreater('periodic.p', 1_700_000_000_000);
      await storage.putData('enqueued.c', 'data');
      assert.equal(await storage.resultStoreSize(), 1);
      assert.deepEqual(await storage.resultItems(), { 'enqueued.c': 'data' });
      assert.deepEqual(await storage.dataKeys('enqueued.'), ['enqueued.c']);
      assert.deepEqual(await storage.counters('enqueued.'), { 'enqueued.a': 3, 'enqueued.b': 1 });
      assert.deepEqual(await storage.counters('enqueued*'), { 'enqueued*': 1 }, 'a prefix is matched as written');
      assert.deepEqual(await storage.counters(''), { 'enqueued.a': 3, 'enqueued.b': 1, 'enqueued*': 1, 'periodic.p': 1_700_000_000_000 });
      assert.deepEqual(await storage.counters('none.'), {});
      await storage.flushResults();
      assert.equal(await storage.resultStoreSize(), 0);
      assert.deepEqual(await storage.counters('enqueued.'), { 'enqueued.a': 3, 'enqueued.b': 1 });
      await storage.flushAll();
      assert.deepEqual(await storage.counters(''), {});
    });

    it('counts a value with a time to live as present everywhere until it lapses', async () => {
      await storage.putData('plain', 'p');
      await storage.putResult('kept', 'for a minute', 60_000);
      assert.equal(await storage.hasDataForKey('kept'), true);
      assert.equal(await storage.putIfEmpty('kept', 'other'), false);
      assert.equal(await storage.peekData('kept'), 'for a minute');
      assert.deepEqual(await storage.peekDataMany(['plain', 'none']), ['p', null]);
      assert.equal(await storage.resultStoreSize(), 2);
      assert.deepEqual(await storage.resultItems(), { plain: 'p', kept: 'for a minute' });
      assert.deepEqual(await storage.dataKeys('kep'), ['kept']);
      assert.equal(await storage.deleteIfEqual('kept', 'other'), false);
      assert.equal(await storage.deleteIfEqual('kept', 'for a minute'), true);
      assert.equal(await storage.hasDataForKey('kept'), false);
      await storage.putResult('dropped', 'for a minute', 60_000);
      assert.equal(await storage.deleteData('dropped'), true);
      assert.equal(await storage.deleteData('dropped'), false);
      assert.equal(await storage.peekData('dropped'), null);
      assert.equal(await storage.resultStoreSize(), 1);

      // Written again without a time to live, a value stays for good.
      await storage.putResult('rewritten', 'brief', 60);
      await storage.putData('rewritten', 'for good');
      await storage.putResult('stored again', 'brief', 60);
      await storage.putResult('stored again', 'for good');
      // Watched with peekData until it lapses; its twin, put first (so it lapses no later), is never peeked at.
      await storage.putResult('lapsed', 'brief', 60);
      await storage.putResult('watched', 'brief', 60);
      const deadline = Date.now() + 5000;
      while ((await storage.peekData('watched')) !== null) {
        assert.ok(Date.now() < deadline, 'a value with a time to live lapses');
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.equal(await storage.hasDataForKey('lapsed'), false);
      assert.equal(await storage.resultStoreSize(), 3);
      assert.deepEqual(await storage.resultItems(), { plain: 'p', rewritten: 'for good', 'stored again': 'for good' });
      assert.deepEqual(await storage.dataKeys('lapse'), []);
      assert.deepEqual(await storage.peekDataMany(['lapsed']), [null]);
      assert.equal(await storage.deleteData('lapsed'), false);
      assert.equal(await storage.deleteIfEqual('lapsed', 'brief'), false);
      assert.equal(await storage.popData('lapsed'), null);
      assert.equal(await storage.putIfEmpty('lapsed', 'taken'), true);
      assert.equal(await storage.peekData('lapsed'), 'taken');
      assert.equal(await storage.resultStoreSize(), 4);
    });

    it('lists, counts and flushes results', async () => {
      await storage.putData('a', '1');
      await storage.putData('b', '2');
      assert.equal(await storage.resultStoreSize(), 2);
      assert.deepEqual(await storage.resultItems(), { a: '1', b: '2' });
      await storage.flushResults();
      assert.equal(await storage.resultStoreSize(), 0);
    });

    it('flushes everything at once', async () => {
      await storage.enqueue('q');
      await storage.increment('c');
      await storage.putResult('t', 'brief', 60_000);
      await storage.enqueue('claimed');
      await storage.dequeue('w9');
      await storage.addToSchedule('s', 1);
      await storage.putData('r', '1');
      await storage.flushAll();
      assert.equal(await storage.queueSize(), 0);
      assert.equal(await storage.scheduleSize(), 0);
      assert.equal(await storage.resultStoreSize(), 0);
      assert.equal(await storage.peekData('t'), null);
      assert.deepEqual(await storage.counters(''), {});
      assert.deepEqual(await storage.claimed('w9'), []);
    });
    it('keeps a record per task: merged field by field, lapsing, and failed ones listed newest first', async () => {
      assert.equal(await storage.readRecord('t1'), null);
      await storage.writeRecord('t1', { state: 'enqueued', name: 'add', created: '100' }, 60_000);
      await storage.writeRecord('t1', { state: 'running', started: '200' }, 60_000);
      assert.deepEqual(await storage.readRecord('t1'), { state: 'running', name: 'add', created: '100', started: '200' });
      // Ends are times (ms since the epoch), as a run writes them.
      const end = (ms: number) => String(Date.now() - 1000 + ms);
      await storage.writeRecord('t2', { state: 'failed', ended: end(300), error: 'Error: no' }, 60_000);
      await storage.writeRecord('t3', { state: 'failed', ended: end(500) }, 60_000);
      await storage.writeRecord('t4', { state: 'failed', ended: end(400) }, 60_000);
      assert.deepEqual(await storage.failedRecords(), ['t3', 't4', 't2']);
      assert.deepEqual(await storage.failedRecords(2), ['t3', 't4']);
      assert.equal(await storage.failedCount(), 3);
      // Retried: no longer failed.
      await storage.writeRecord('t3', { state: 'enqueued' }, 60_000);
      assert.deepEqual(await storage.failedRecords(), ['t4', 't2']);
      // A record lapses: gone from reads and from the failed list.
      await storage.writeRecord('t4', { state: 'failed', ended: String(Date.now()) }, 1);
      await new Promise((resolve) => setTimeout(resolve, 10));
      assert.equal(await storage.readRecord('t4'), null);
      assert.deepEqual(await storage.failedRecords(), ['t2']);
      assert.equal(await storage.failedCount(), 1, 'a lapsed failure is not counted');
      // Records are not results, flags or counters.
      assert.deepEqual(await storage.resultItems(), {});
      await storage.flushAll();
      assert.equal(await storage.readRecord('t1'), null);
      assert.deepEqual(await storage.failedRecords(), []);
    });

    it('removes one scheduled message, once', async () => {
      await storage.addToSchedule('later', 5000, 3);
      await storage.addToSchedule('sooner', 1000, 3);
      assert.equal(await storage.removeScheduled('later', 3), true);
      assert.equal(await storage.removeScheduled('later', 3), false);
      assert.deepEqual(await storage.scheduledItems(), ['sooner']);
      assert.deepEqual((await storage.enqueueDue(10_000)).moved, 1);
      assert.equal(await storage.removeScheduled('sooner', 3), false, 'gone once moved to the queue');
    });

    it('keeps each named queue apart from the instance and from the other queues', async () => {
      assert.ok(storage.forQueue, `${kind} storage has named queues`);
      const emails = storage.forQueue('emails');
      const shard = storage.forQueue('emails#1');
      assert.equal(storage.forQueue('emails'), emails, 'the same storage for the same name');
      assert.notEqual(emails, storage);
      try {
        await emails.connect();
        await shard.connect();
        await storage.enqueue('home');
        await emails.enqueue('e1');
        await emails.enqueueMany([{ data: 'e2' }]);
        await shard.addToSchedule('s1', 5);
        assert.deepEqual(await storage.enqueuedItems(), ['home']);
        assert.deepEqual(await emails.enqueuedItems(), ['e1', 'e2']);
        assert.equal(await shard.queueSize(), 0);
        assert.equal(await shard.scheduleSize(), 1);
        assert.equal(await emails.scheduleSize(), 0);
        // Claims, leases, results and dead letters are the queue's own.
        const claim = (await emails.dequeue('w1'))!;
        assert.equal(claim.data, 'e1');
        assert.deepEqual(await storage.claimed('w1'), []);
        await emails.renewLeases(['w1'], 1);
        await storage.renewLeases(['w2'], 60_000);
        await new Promise((resolve) => setTimeout(resolve, 5));
        assert.deepEqual(await emails.expiredLeases(), ['w1']);
        assert.deepEqual(await storage.expiredLeases(), []);
        await emails.putResult('id-1', 'value', undefined, claim);
        assert.deepEqual(await emails.claimed('w1'), []);
        assert.equal(await storage.peekData('id-1'), null);
        assert.equal(await emails.peekData('id-1'), 'value');
        await emails.deadLetter((await emails.dequeue('w1'))!, 'bad');
        assert.equal(await emails.deadLetterCount(), 1);
        assert.equal(await storage.deadLetterCount(), 0);
        assert.deepEqual(await shard.enqueueDue(10), { moved: 1, next: null });
        assert.deepEqual(await shard.enqueuedItems(), ['s1']);
      } finally {
        await emails.flushAll();
        await shard.flushAll();
      }
    });
  });
}
