import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
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

  it('says clearly when the file cannot be opened', async () => {
    const storage = new SqliteStorage('nowhere', { filename: join(dir, 'no', 'such', 'dir', 'x.db') });
    await assert.rejects(storage.connect(), /cannot open SQLite database .*x\.db/);
  });
});
