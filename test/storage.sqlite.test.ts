import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { SqliteStorage } from '../src/index.js';
import { storageConformance } from './support/storage-conformance.js';

const dir = mkdtempSync(join(tmpdir(), 'huey-sqlite-'));
after(() => rmSync(dir, { recursive: true, force: true }));

storageConformance('sqlite', async () => new SqliteStorage('conformance', { filename: join(dir, 'conformance.db') }));

describe('sqlite storage', () => {
  it('keeps two instances in one file apart, and data across reopening', async () => {
    const filename = join(dir, 'shared.db');
    const one = new SqliteStorage('one', { filename });
    const two = new SqliteStorage('two', { filename });
    await one.enqueue('for one');
    await one.putData('k', 'v');
    assert.equal(await two.queueSize(), 0);
    await one.close();
    const again = new SqliteStorage('one', { filename });
    assert.deepEqual(await again.enqueuedItems(), ['for one']);
    assert.equal(await again.peekData('k'), 'v');
    await Promise.all([again.close(), two.close()]);
  });

  it('moves the counters an earlier version kept among the data to their own table, once', async () => {
    const filename = join(dir, 'earlier.db');
    const made = new SqliteStorage('old', { filename });
    await made.connect();
    await made.close();
    // The file as an earlier version left it: counters in the data table, no counters table.
    const db = new Database(filename);
    db.exec('DROP TABLE "huey_old_counters"');
    const put = db.prepare('INSERT INTO "huey_old_data" (key, value, expires_at) VALUES (?, ?, ?)');
    for (const [key, value, expires] of [
      ['enqueued.send', '12', null],
      ['chord.c1', '2', null],
      ['chord.c1.0', '{"value":1}', null],
      ['ratelimit.mails.480000', '3', null],
      ['periodic.nightly', '1700000000000', null],
      ['enqueued.odd', 'not a number', null],
      ['task-id', '7', null],
      ['chord.brief', '1', Date.now() + 60_000],
    ] as const) {
      put.run(key, value, expires);
    }
    db.close();

    const opened = new SqliteStorage('old', { filename });
    assert.deepEqual(await opened.counters(''), { 'enqueued.send': 12, 'chord.c1': 2, 'ratelimit.mails.480000': 3, 'periodic.nightly': 1_700_000_000_000 });
    assert.deepEqual(await opened.resultItems(), { 'chord.c1.0': '{"value":1}', 'enqueued.odd': 'not a number', 'task-id': '7', 'chord.brief': '1' });
    // Carried on from where they were.
    assert.equal(await opened.increment('chord.c1'), 3);
    assert.equal(await opened.putIfGreater('periodic.nightly', 1_700_000_000_000), false);
    await opened.close();
    // Moved once: a data key of a counter's name written later stays data.
    const again = new SqliteStorage('old', { filename });
    await again.putData('enqueued.send', '5');
    await again.close();
    const third = new SqliteStorage('old', { filename });
    assert.equal(await third.peekData('enqueued.send'), '5');
    assert.deepEqual(await third.counters('enqueued.'), { 'enqueued.send': 12 });
    await third.close();
  });

  it('says clearly when the file cannot be opened', async () => {
    const storage = new SqliteStorage('nowhere', { filename: join(dir, 'no', 'such', 'dir', 'x.db') });
    await assert.rejects(storage.connect(), /cannot open SQLite database .*x\.db/);
  });
});
