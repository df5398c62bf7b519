import { watch as watchPath, type FSWatcher } from 'node:fs';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import type Database from 'better-sqlite3';
import { StorageError } from '../../errors.js';
import type { Adoption, Claim, DeadLetter, DueMove, Storage } from '../storage.js';
import { checkInstanceName } from '../../validate.js';

export interface SqliteStorageOptions {
  /** The database file, shared by the producer, the consumer and its workers. @defaultValue `huey-<name>.db` */
  filename?: string;
  /** Milliseconds to wait for another process's write lock before failing. @defaultValue 5000 */
  busyTimeout?: number;
}

/*
 * One instance's tables are prefixed with its name, so two apps can share a file.
 * The queue keeps claimed rows in place with their owner: a claim is one
 * UPDATE ... RETURNING, an ack a DELETE, and a requeue clears the owner, which
 * puts the row back at its old place in line.
 */
const SCHEMA = (t: string) => `
  CREATE TABLE IF NOT EXISTS "${t}_queue" (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    data TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    started INTEGER NOT NULL DEFAULT 0,
    stalls INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX IF NOT EXISTS "${t}_queue_next" ON "${t}_queue" (owner, priority DESC, id);
  CREATE TABLE IF NOT EXISTS "${t}_schedule" (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    data TEXT NOT NULL,
    eta INTEGER NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX IF NOT EXISTS "${t}_schedule_eta" ON "${t}_schedule" (eta, id);
  CREATE TABLE IF NOT EXISTS "${t}_data" (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    expires_at INTEGER
  );
  CREATE TABLE IF NOT EXISTS "${t}_counters" (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS "${t}_dead" (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    data TEXT NOT NULL,
    reason TEXT NOT NULL,
    at INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS "${t}_leases" (
    owner TEXT PRIMARY KEY,
    deadline INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS "${t}_status" (
    worker TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
  CREATE TABLE IF NOT EXISTS "${t}_events" (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    value TEXT NOT NULL
  );
  CREATE TABLE IF NOT EXISTS "${t}_records" (
    id TEXT PRIMARY KEY,
    fields TEXT NOT NULL,
    state TEXT,
    ended INTEGER,
    expires_at INTEGER NOT NULL
  );
  CREATE INDEX IF NOT EXISTS "${t}_records_failed" ON "${t}_records" (state, ended);
`;

type Row = Record<string, unknown>;

/** Lapsed records are deleted once every this many record writes. */
const RECORD_PRUNE_EVERY = 1000;

/**
 * While a dequeue waits, the instance looks whether another connection has
 * committed (`PRAGMA data_version`, a read of the shared WAL index) when the
 * WAL file is written, a few ms after (`FILE_EVENT_SETTLE_MS`, so that the
 * writer has published its commit), and every `SAFETY_INTERVAL_MS` besides.
 * Where the file cannot be watched it looks every `WATCH_INTERVAL_MS`
 * instead: each look wakes the process, which costs more than the read
 * (measured on Linux: 0.6% of a core for a bare 25 ms timer). With nothing
 * waiting, there is no timer and no watch at all.
 */
const WATCH_INTERVAL_MS = 25;
const SAFETY_INTERVAL_MS = 250;
const FILE_EVENT_SETTLE_MS = 2;

/** A dequeue waiting for the queue to change; `version` is the data_version it last saw. */
interface Waiter {
  version: number;
  /** true: something changed, look again; false: the wait is over (timed out, or the storage closed). */
  wake(changed: boolean): void;
}

/**
 * The native binding is loaded on first open, not on import: an app on Redis
 * (and every worker process it starts) does not pay for loading it.
 */
let openDatabase: ((filename: string) => Database.Database) | undefined;
function loadBinding(): (filename: string) => Database.Database {
  if (!openDatabase) {
    const Binding = createRequire(import.meta.url)('better-sqlite3') as typeof Database;
    openDatabase = (filename) => new Binding(filename);
  }
  return openDatabase;
}

/**
 * An embedded storage in one SQLite file: no server to run. Safe across the
 * processes of one machine (WAL mode; every multi-step change is one
 * transaction, taken with an immediate write lock), with the same claim →
 * ack and lease recovery as Redis.
 *
 * A dequeue given a timeout waits for work, as on Redis, so workers do not
 * poll with a backoff: an enqueue through this instance (a producer, a
 * retry, the scheduler moving due tasks) wakes its waiters at once, and
 * while anything waits one timer per instance reads `PRAGMA data_version`
 * every few tens of ms, which changes when another connection (another
 * process, or a thread worker's) commits; waiters then look again.
 */
export class SqliteStorage implements Storage {
  readonly kind = 'sqlite';
  readonly blocking = true;
  readonly ordersByPriority = true;
  readonly filename: string;
  private db?: Database.Database;
  private statements = new Map<string, Database.Statement>();
  private readonly table: string;
  /** Row ids of runs started and not yet recorded: written together after a turn of the event loop, unless acked first. */
  private startedMarks = new Set<number>();
  private marksFlush?: NodeJS.Immediate;
  /** Dequeues waiting for work, and what watches other connections' commits while there are any. */
  private waiters = new Set<Waiter>();
  private watcher?: NodeJS.Timeout;
  private walWatcher?: FSWatcher;
  private walCheck?: NodeJS.Timeout;
  /** Counts closes: a wait that outlives one must not reopen the file. */
  private closes = 0;
  private recordWrites = 0;

  /** The storages of this instance's named queues, made on first use; see `forQueue`. */
  private readonly queueStorages = new Map<string, SqliteStorage>();
  private readonly isQueue: boolean;

  constructor(
    readonly name: string,
    private readonly options: SqliteStorageOptions = {},
    queue?: string,
  ) {
    this.filename = options.filename ?? `huey-${name}.db`;
    // The name as it is (every table name is quoted): my-app and my_app never share tables.
    // A named queue's tables are `huey_<name>:<queue>_*`: no instance name has a colon.
    checkInstanceName(name);
    this.table = queue === undefined ? `huey_${name}` : `huey_${name}:${queue}`;
    this.isQueue = queue !== undefined;
  }

  /**
   * The storage of one named queue (or queue shard, `name#n`) of this
   * instance: tables of its own in the same file, on a connection of its own.
   */
  forQueue(queue: string): SqliteStorage {
    if (this.isQueue) throw new StorageError('forQueue is asked of the instance\'s storage, not of a queue\'s');
    let storage = this.queueStorages.get(queue);
    if (!storage) {
      storage = new SqliteStorage(this.name, this.options, queue);
      this.queueStorages.set(queue, storage);
    }
    return storage;
  }

  async connect(): Promise<void> {
    this.open();
  }

  private open(): Database.Database {
    if (this.db) return this.db;
    try {
      const db = loadBinding()(this.filename);
      db.pragma('journal_mode = WAL');
      db.pragma(`busy_timeout = ${this.options.busyTimeout ?? 5000}`);
      db.pragma('synchronous = NORMAL');
      const hadCounters = this.hasTable(db, 'counters');
      db.exec(SCHEMA(this.table));
      this.addMissingColumns(db);
      if (!hadCounters) this.moveCounters(db);
      this.db = db;
      return db;
    } catch (error) {
      throw new StorageError(`cannot open SQLite database ${this.filename}: ${(error as Error).message}`);
    }
  }

  /** A file made by an earlier version lacks the queue's later columns. */
  private addMissingColumns(db: Database.Database): void {
    const columns = new Set((db.prepare(`PRAGMA table_info("${this.table}_queue")`).all() as Row[]).map((row) => String(row.name)));
    for (const column of ['started', 'stalls']) {
      if (!columns.has(column)) db.exec(`ALTER TABLE "${this.table}_queue" ADD COLUMN ${column} INTEGER NOT NULL DEFAULT 0`);
    }
  }

  private hasTable(db: Database.Database, name: string): boolean {
    return db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(`${this.table}_${name}`) !== undefined;
  }

  /**
   * Earlier versions kept counters among the key/value data: move them to
   * their table once, when it is made, so that open chords, rate-limit
   * windows, periodic marks and enqueue totals carry on where they were.
   * Only Huey's own counter keys holding a whole number move; a chord's
   * member slots (`chord.<id>.<i>`) hold serialized outcomes, never one.
   * Two processes opening the file at once may both get here: the second
   * finds nothing left to move, and should a counter exist already it is
   * added to (a high-water mark keeps the greater).
   */
  private moveCounters(db: Database.Database): void {
    const t = this.table;
    const counter = `(key GLOB 'enqueued.*' OR key GLOB 'chord.*' OR key GLOB 'ratelimit.*' OR key GLOB 'periodic.*')
      AND expires_at IS NULL AND value GLOB '[0-9]*' AND value NOT GLOB '*[^0-9]*' AND length(value) < 19`;
    db.transaction(() => {
      db.prepare(
        `INSERT INTO "${t}_counters" (key, value) SELECT key, CAST(value AS INTEGER) FROM "${t}_data" WHERE ${counter}
         ON CONFLICT (key) DO UPDATE SET value = CASE WHEN key GLOB 'periodic.*' THEN max(value, excluded.value) ELSE value + excluded.value END`,
      ).run();
      db.prepare(`DELETE FROM "${t}_data" WHERE ${counter}`).run();
    }).immediate();
  }

  async close(): Promise<void> {
    for (const storage of this.queueStorages.values()) await storage.close();
    // Waiting dequeues return empty at once.
    this.closes++;
    for (const waiter of [...this.waiters]) waiter.wake(false);
    this.flushMarks();
    this.statements.clear();
    this.db?.close();
    this.db = undefined;
  }

  /** A statement prepared once; `$t` stands for this instance's table prefix. */
  private sql(text: string): Database.Statement {
    let statement = this.statements.get(text);
    if (!statement) {
      statement = this.open().prepare(text.replaceAll('$t', this.table));
      this.statements.set(text, statement);
    }
    return statement;
  }

  /** Run `fn` in one transaction that takes the write lock at once, so readers never race writers. */
  private atomically<T>(fn: () => T): T {
    return this.open().transaction(fn).immediate();
  }

  async enqueue(data: string, priority = 0): Promise<void> {
    this.sql('INSERT INTO "$t_queue" (data, priority) VALUES (?, ?)').run(data, priority);
    this.wakeWaiters();
  }

  async enqueueMany(items: ReadonlyArray<{ data: string; priority?: number }>): Promise<void> {
    const insert = this.sql('INSERT INTO "$t_queue" (data, priority) VALUES (?, ?)');
    this.atomically(() => {
      for (const item of items) insert.run(item.data, item.priority ?? 0);
    });
    if (items.length > 0) this.wakeWaiters();
  }

  async dequeue(workerId: string, timeoutMs = 0): Promise<Claim | null> {
    return (await this.dequeueMany(workerId, 1, timeoutMs))[0] ?? null;
  }

  /**
   * Claim up to `count` messages; on an empty queue wait up to `timeoutMs`
   * for one. A waiting claim first reads whether anything is queued, so an
   * idle worker never takes the write lock (nor waits on a writer's).
   */
  async dequeueMany(workerId: string, count: number, timeoutMs = 0): Promise<Claim[]> {
    if (!(timeoutMs > 0)) return this.claim(workerId, count);
    const deadline = performance.now() + timeoutMs;
    const closes = this.closes;
    for (;;) {
      // The version is read before looking, so a commit made after the look is seen as a change.
      const version = this.dataVersion();
      if (this.sql('SELECT 1 FROM "$t_queue" WHERE owner IS NULL LIMIT 1').get() !== undefined) {
        const claims = this.claim(workerId, count);
        if (claims.length > 0) return claims;
      }
      const left = deadline - performance.now();
      if (left <= 0 || !(await this.changed(version, left)) || this.closes !== closes) return [];
    }
  }

  private claim(workerId: string, count: number): Claim[] {
    const rows = this.sql(
      `UPDATE "$t_queue" SET owner = ? WHERE id IN (
         SELECT id FROM "$t_queue" WHERE owner IS NULL ORDER BY priority DESC, id LIMIT ?
       ) RETURNING id, data, priority`,
    ).all(workerId, count) as Row[];
    // RETURNING gives no order of its own.
    rows.sort((a, b) => Number(b.priority) - Number(a.priority) || Number(a.id) - Number(b.id));
    return rows.map((row) => ({ data: String(row.data), workerId, receipt: String(row.id) }));
  }

  /** Changes when another connection commits to the file; this connection's own commits leave it. */
  private dataVersion(): number {
    return Number((this.sql('PRAGMA data_version').get() as Row).data_version);
  }

  /**
   * Resolves true once the queue may have changed since `version` was read
   * (another connection committed, or this instance queued something), false
   * after `timeoutMs` or at `close()`. The timeout keeps the process alive
   * as a pending read would; the shared watcher does not.
   */
  private changed(version: number, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const waiter: Waiter = {
        version,
        wake: (changed) => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          if (this.waiters.size === 0) this.stopWatching();
          resolve(changed);
        },
      };
      const timer = setTimeout(() => waiter.wake(false), timeoutMs);
      this.waiters.add(waiter);
      if (!this.watcher) this.startWatching();
    });
  }

  private startWatching(): void {
    this.walWatcher = this.watchWal();
    this.watcher = setInterval(() => this.watch(), this.walWatcher ? SAFETY_INTERVAL_MS : WATCH_INTERVAL_MS).unref();
  }

  private stopWatching(): void {
    clearInterval(this.watcher);
    clearTimeout(this.walCheck);
    this.walWatcher?.close();
    this.watcher = this.walCheck = this.walWatcher = undefined;
  }

  /**
   * Watch the WAL file, which every commit writes (inotify on Linux): a
   * check follows each burst of writes. None where it cannot be watched
   * (an in-memory database, no file events, no watches left).
   */
  private watchWal(): FSWatcher | undefined {
    try {
      const row = this.sql("SELECT file FROM pragma_database_list WHERE name = 'main'").get() as Row | undefined;
      if (!row?.file) return undefined;
      const watcher = watchPath(`${String(row.file)}-wal`, { persistent: false }, () => {
        this.walCheck ??= setTimeout(() => {
          this.walCheck = undefined;
          this.watch();
        }, FILE_EVENT_SETTLE_MS);
      });
      watcher.on('error', () => {
        // Gone (the file was replaced): look often for the rest of this wait.
        if (this.walWatcher !== watcher) return;
        this.stopWatching();
        this.watcher = setInterval(() => this.watch(), WATCH_INTERVAL_MS).unref();
      });
      return watcher;
    } catch {
      return undefined;
    }
  }

  /** The watcher's tick: wake the waiters that have not seen the current version. */
  private watch(): void {
    let version: number | undefined;
    try {
      if (this.db) version = this.dataVersion();
    } catch {
      // Unreadable now: the waiters look for themselves, and their claim reports the error.
    }
    for (const waiter of [...this.waiters]) {
      if (version === undefined || waiter.version !== version) waiter.wake(true);
    }
  }

  /** Something was queued through this connection, which its own data_version does not show. */
  private wakeWaiters(): void {
    for (const waiter of [...this.waiters]) waiter.wake(true);
  }

  markStarted(claim: Claim): void {
    this.startedMarks.add(Number(claim.receipt));
    this.marksFlush ??= setImmediate(() => this.flushMarks());
  }

  /** Record the runs still going: best effort, as a lost mark only makes a run count as unstarted. */
  private flushMarks(): void {
    if (this.marksFlush) clearImmediate(this.marksFlush);
    this.marksFlush = undefined;
    if (this.startedMarks.size === 0 || !this.db) return this.startedMarks.clear();
    const ids = [...this.startedMarks];
    this.startedMarks.clear();
    try {
      const mark = this.sql('UPDATE "$t_queue" SET started = 1 WHERE id = ? AND owner IS NOT NULL');
      this.atomically(() => {
        for (const id of ids) mark.run(id);
      });
    } catch {
      // The database is busy or gone: these runs count as unstarted.
    }
  }

  async ack(claim: Claim): Promise<void> {
    this.startedMarks.delete(Number(claim.receipt));
    this.sql('DELETE FROM "$t_queue" WHERE id = ? AND owner = ?').run(Number(claim.receipt), claim.workerId);
    // Other runs started meanwhile are recorded now, as they are on Redis with an ack.
    if (this.startedMarks.size > 0) this.flushMarks();
  }

  async retryAndAck(claim: Claim, data: string, eta: number | null, priority: number): Promise<void> {
    this.startedMarks.delete(Number(claim.receipt));
    this.atomically(() => {
      if (eta === null) this.sql('INSERT INTO "$t_queue" (data, priority) VALUES (?, ?)').run(data, priority);
      else this.sql('INSERT INTO "$t_schedule" (data, eta, priority) VALUES (?, ?, ?)').run(data, eta, priority);
      this.sql('DELETE FROM "$t_queue" WHERE id = ? AND owner = ?').run(Number(claim.receipt), claim.workerId);
    });
    if (eta === null) this.wakeWaiters();
    // Other runs started meanwhile are recorded now, as they are with an ack.
    if (this.startedMarks.size > 0) this.flushMarks();
  }

  async release(claims: readonly Claim[]): Promise<number> {
    // A row keeps its place in line: clearing its owner puts it back there.
    const release = this.sql('UPDATE "$t_queue" SET owner = NULL, started = 0 WHERE id = ? AND owner = ?');
    const moved = this.atomically(() => claims.reduce((moved, claim) => moved + release.run(Number(claim.receipt), claim.workerId).changes, 0));
    if (moved > 0) this.wakeWaiters();
    return moved;
  }

  async deadLetter(claim: Claim, reason: string): Promise<void> {
    this.atomically(() => {
      this.sql('DELETE FROM "$t_queue" WHERE id = ? AND owner = ?').run(Number(claim.receipt), claim.workerId);
      this.sql('INSERT INTO "$t_dead" (data, reason, at) VALUES (?, ?, ?)').run(claim.data, reason, Date.now());
    });
  }

  async deadLetterCount(): Promise<number> {
    return Number((this.sql('SELECT count(*) AS n FROM "$t_dead"').get() as Row).n);
  }

  async deleteDeadLetter(letter: DeadLetter): Promise<boolean> {
    const row = this.sql('SELECT id FROM "$t_dead" WHERE data = ? AND reason = ? AND at = ? LIMIT 1').get(letter.data, letter.reason, letter.at) as Row | undefined;
    return row !== undefined && this.sql('DELETE FROM "$t_dead" WHERE id = ?').run(row.id).changes > 0;
  }

  async deadLetters(limit = -1): Promise<DeadLetter[]> {
    const rows = this.sql('SELECT data, reason, at FROM "$t_dead" ORDER BY id DESC LIMIT ?').all(limit) as Row[];
    return rows.map((row) => ({ data: String(row.data), reason: String(row.reason), at: Number(row.at) }));
  }

  async requeue(workerId: string): Promise<number> {
    const moved = this.sql('UPDATE "$t_queue" SET owner = NULL, started = 0 WHERE owner = ?').run(workerId).changes;
    if (moved > 0) this.wakeWaiters();
    return moved;
  }

  async claimed(workerId: string): Promise<Claim[]> {
    const rows = this.sql('SELECT id, data FROM "$t_queue" WHERE owner = ? ORDER BY id DESC').all(workerId) as Row[];
    return rows.map((row) => ({ data: String(row.data), workerId, receipt: String(row.id) }));
  }

  async queueSize(): Promise<number> {
    return Number((this.sql('SELECT count(*) AS n FROM "$t_queue" WHERE owner IS NULL').get() as Row).n);
  }

  async enqueuedItems(limit = -1): Promise<string[]> {
    const rows = this.sql('SELECT data FROM "$t_queue" WHERE owner IS NULL ORDER BY priority DESC, id LIMIT ?').all(limit) as Row[];
    return rows.map((row) => String(row.data));
  }

  async flushQueue(): Promise<void> {
    this.sql('DELETE FROM "$t_queue" WHERE owner IS NULL').run();
  }

  async renewLeases(ownerIds: readonly string[], leaseMs: number): Promise<void> {
    const upsert = this.sql('INSERT INTO "$t_leases" (owner, deadline) VALUES (?, ?) ON CONFLICT (owner) DO UPDATE SET deadline = excluded.deadline');
    const deadline = Date.now() + leaseMs;
    this.atomically(() => {
      for (const owner of ownerIds) upsert.run(owner, deadline);
    });
  }

  async dropLeases(ownerIds: readonly string[]): Promise<void> {
    const drop = this.sql('DELETE FROM "$t_leases" WHERE owner = ?');
    this.atomically(() => {
      for (const owner of ownerIds) drop.run(owner);
    });
  }

  async expiredLeases(): Promise<string[]> {
    const rows = this.sql('SELECT owner FROM "$t_leases" WHERE deadline < ?').all(Date.now()) as Row[];
    return rows.map((row) => String(row.owner));
  }

  async adoptClaims(ownerId: string, adopterId: string, maxStalls: number, concurrency: number): Promise<Adoption | null> {
    const adoption = this.atomically(() => {
      const gone = this.sql('DELETE FROM "$t_leases" WHERE owner = ? AND deadline < ?').run(ownerId, Date.now()).changes;
      if (gone === 0) return null;
      // Runs start in claim order: only the oldest `concurrency` rows may have been running
      // unrecorded, and those that were not marked count a stall; over the limit they go to the
      // adopter. Started rows go to the adopter too, the rest back in line at their old place.
      const slots = '(SELECT id FROM "$t_queue" WHERE owner = ? ORDER BY priority DESC, id LIMIT ?)';
      this.sql(`UPDATE "$t_queue" SET stalls = stalls + 1 WHERE started = 0 AND id IN ${slots}`).run(ownerId, concurrency);
      const stalledRows = this.sql(`UPDATE "$t_queue" SET owner = ? WHERE owner = ? AND started = 0 AND stalls > ? AND id IN ${slots} RETURNING id, data`).all(adopterId, ownerId, maxStalls, ownerId, concurrency) as Row[];
      const started = this.sql('UPDATE "$t_queue" SET owner = ? WHERE owner = ? AND started = 1').run(adopterId, ownerId).changes;
      const requeued = this.sql('UPDATE "$t_queue" SET owner = NULL WHERE owner = ?').run(ownerId).changes;
      const stalled = stalledRows.map((row) => ({ data: String(row.data), workerId: adopterId, receipt: String(row.id) }));
      return { started, requeued, stalled };
    });
    if (adoption && adoption.requeued > 0) this.wakeWaiters();
    return adoption;
  }

  async addToSchedule(data: string, timestamp: number, priority = 0): Promise<void> {
    this.sql('INSERT INTO "$t_schedule" (data, eta, priority) VALUES (?, ?, ?)').run(data, timestamp, priority);
  }

  async removeScheduled(data: string): Promise<boolean> {
    return this.sql('DELETE FROM "$t_schedule" WHERE id = (SELECT id FROM "$t_schedule" WHERE data = ? ORDER BY eta, id LIMIT 1)').run(data).changes > 0;
  }

  async readSchedule(timestamp: number): Promise<string[]> {
    return this.atomically(() => {
      const rows = this.sql('SELECT data FROM "$t_schedule" WHERE eta <= ? ORDER BY eta, id').all(timestamp) as Row[];
      this.sql('DELETE FROM "$t_schedule" WHERE eta <= ?').run(timestamp);
      return rows.map((row) => String(row.data));
    });
  }

  async enqueueDue(timestamp: number): Promise<DueMove> {
    const due = this.atomically(() => {
      this.sql('INSERT INTO "$t_queue" (data, priority) SELECT data, priority FROM "$t_schedule" WHERE eta <= ? ORDER BY eta, id').run(timestamp);
      const moved = this.sql('DELETE FROM "$t_schedule" WHERE eta <= ?').run(timestamp).changes;
      const next = (this.sql('SELECT min(eta) AS next FROM "$t_schedule"').get() as Row).next;
      return { moved, next: next === null || next === undefined ? null : Number(next) };
    });
    if (due.moved > 0) this.wakeWaiters();
    return due;
  }

  async scheduleSize(): Promise<number> {
    return Number((this.sql('SELECT count(*) AS n FROM "$t_schedule"').get() as Row).n);
  }

  async scheduledItems(limit = -1): Promise<string[]> {
    const rows = this.sql('SELECT data FROM "$t_schedule" ORDER BY eta, id LIMIT ?').all(limit) as Row[];
    return rows.map((row) => String(row.data));
  }

  async flushSchedule(): Promise<void> {
    this.sql('DELETE FROM "$t_schedule"').run();
  }

  // Key/value data. An expired row counts as absent; the next write to its key replaces it.
  private static readonly LIVE = '(expires_at IS NULL OR expires_at > ?)';

  async putData(key: string, value: string): Promise<void> {
    this.sql('INSERT OR REPLACE INTO "$t_data" (key, value, expires_at) VALUES (?, ?, NULL)').run(key, value);
  }

  async putResult(id: string, value: string, ttlMs?: number, ack?: Claim): Promise<void> {
    this.atomically(() => {
      this.sql('INSERT OR REPLACE INTO "$t_data" (key, value, expires_at) VALUES (?, ?, ?)').run(id, value, ttlMs ? Date.now() + ttlMs : null);
      if (ack) {
        this.startedMarks.delete(Number(ack.receipt));
        this.sql('DELETE FROM "$t_queue" WHERE id = ? AND owner = ?').run(Number(ack.receipt), ack.workerId);
      }
    });
    if (this.startedMarks.size > 0) this.flushMarks();
  }

  async watchResult(): Promise<null> {
    // Another process's write cannot be heard here: readers poll.
    return null;
  }

  async peekData(key: string): Promise<string | null> {
    const row = this.sql(`SELECT value FROM "$t_data" WHERE key = ? AND ${SqliteStorage.LIVE}`).get(key, Date.now()) as Row | undefined;
    return row ? String(row.value) : null;
  }

  async peekDataMany(keys: readonly string[]): Promise<Array<string | null>> {
    const values: Array<string | null> = [];
    for (const key of keys) values.push(await this.peekData(key));
    return values;
  }

  async popData(key: string): Promise<string | null> {
    const row = this.sql(`DELETE FROM "$t_data" WHERE key = ? AND ${SqliteStorage.LIVE} RETURNING value`).get(key, Date.now()) as Row | undefined;
    return row ? String(row.value) : null;
  }

  async putIfEmpty(key: string, value: string): Promise<boolean> {
    // One statement: a live row blocks the insert; an expired one is replaced.
    const result = this.sql(
      `INSERT INTO "$t_data" (key, value, expires_at) VALUES (?, ?, NULL)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = NULL
       WHERE expires_at IS NOT NULL AND expires_at <= ?`,
    ).run(key, value, Date.now());
    return result.changes === 1;
  }

  async deleteData(key: string): Promise<boolean> {
    return this.sql(`DELETE FROM "$t_data" WHERE key = ? AND ${SqliteStorage.LIVE}`).run(key, Date.now()).changes > 0;
  }

  async deleteIfEqual(key: string, value: string): Promise<boolean> {
    return this.sql(`DELETE FROM "$t_data" WHERE key = ? AND value = ? AND ${SqliteStorage.LIVE}`).run(key, value, Date.now()).changes > 0;
  }

  async hasDataForKey(key: string): Promise<boolean> {
    return this.sql(`SELECT 1 FROM "$t_data" WHERE key = ? AND ${SqliteStorage.LIVE}`).get(key, Date.now()) !== undefined;
  }

  async resultStoreSize(): Promise<number> {
    return Number((this.sql(`SELECT count(*) AS n FROM "$t_data" WHERE ${SqliteStorage.LIVE}`).get(Date.now()) as Row).n);
  }

  async resultItems(): Promise<Record<string, string>> {
    const rows = this.sql(`SELECT key, value FROM "$t_data" WHERE ${SqliteStorage.LIVE}`).all(Date.now()) as Row[];
    return Object.fromEntries(rows.map((row) => [String(row.key), String(row.value)]));
  }

  async flushResults(): Promise<void> {
    this.sql('DELETE FROM "$t_data"').run();
  }

  async increment(key: string, by = 1): Promise<number> {
    const row = this.sql(
      `INSERT INTO "$t_counters" (key, value) VALUES (?, ?)
       ON CONFLICT (key) DO UPDATE SET value = value + excluded.value
       RETURNING value`,
    ).get(key, by) as Row;
    return Number(row.value);
  }

  async putIfGreater(key: string, value: number): Promise<boolean> {
    const result = this.sql(
      `INSERT INTO "$t_counters" (key, value) VALUES (?, ?)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value WHERE value < excluded.value`,
    ).run(key, value);
    return result.changes === 1;
  }

  async counters(prefix: string): Promise<Record<string, number>> {
    const rows = this.sql('SELECT key, value FROM "$t_counters" WHERE substr(key, 1, ?) = ?').all(prefix.length, prefix) as Row[];
    return Object.fromEntries(rows.map((row) => [String(row.key), Number(row.value)]));
  }

  async deleteCounter(key: string): Promise<boolean> {
    return this.sql('DELETE FROM "$t_counters" WHERE key = ?').run(key).changes > 0;
  }

  async queueSizeByPriority(): Promise<Array<[number, number]>> {
    const rows = this.sql('SELECT priority, count(*) AS n FROM "$t_queue" WHERE owner IS NULL GROUP BY priority ORDER BY priority DESC').all() as Row[];
    return rows.map((row) => [Number(row.priority), Number(row.n)]);
  }

  async dataKeys(prefix: string, limit = -1): Promise<string[]> {
    // substr, not LIKE: a prefix may hold % or _.
    const rows = this.sql(`SELECT key FROM "$t_data" WHERE substr(key, 1, ?) = ? AND ${SqliteStorage.LIVE} LIMIT ?`).all(prefix.length, prefix, Date.now(), limit) as Row[];
    return rows.map((row) => String(row.key));
  }

  async putStatus(id: string, value: string): Promise<void> {
    this.sql('INSERT INTO "$t_status" (worker, value) VALUES (?, ?) ON CONFLICT (worker) DO UPDATE SET value = excluded.value').run(id, value);
  }

  async statuses(): Promise<Record<string, string>> {
    const rows = this.sql('SELECT worker, value FROM "$t_status"').all() as Row[];
    return Object.fromEntries(rows.map((row) => [String(row.worker), String(row.value)]));
  }

  async dropStatus(id: string): Promise<void> {
    this.sql('DELETE FROM "$t_status" WHERE worker = ?').run(id);
  }

  async pushEvents(values: readonly string[], keep: number): Promise<void> {
    const insert = this.sql('INSERT INTO "$t_events" (value) VALUES (?)');
    this.atomically(() => {
      for (const value of values) insert.run(value);
      this.sql('DELETE FROM "$t_events" WHERE id <= (SELECT max(id) FROM "$t_events") - ?').run(keep);
    });
  }

  async events(limit = -1): Promise<string[]> {
    const rows = this.sql('SELECT value FROM "$t_events" ORDER BY id DESC LIMIT ?').all(limit) as Row[];
    return rows.map((row) => String(row.value));
  }

  async writeRecord(id: string, fields: Readonly<Record<string, string>>, ttlMs: number): Promise<void> {
    const now = Date.now();
    // Lapsed records are read as absent; every so many writes they are also deleted, so the table stays bounded.
    if (++this.recordWrites % RECORD_PRUNE_EVERY === 0) this.sql('DELETE FROM "$t_records" WHERE expires_at <= ?').run(now);
    this.atomically(() => {
      const row = this.sql('SELECT fields FROM "$t_records" WHERE id = ? AND expires_at > ?').get(id, now) as Row | undefined;
      const merged = { ...(row ? (JSON.parse(String(row.fields)) as Record<string, string>) : {}), ...fields };
      const ended = merged.ended === undefined ? null : Number(merged.ended);
      this.sql(
        `INSERT INTO "$t_records" (id, fields, state, ended, expires_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET fields = excluded.fields, state = excluded.state, ended = excluded.ended, expires_at = excluded.expires_at`,
      ).run(id, JSON.stringify(merged), merged.state ?? null, Number.isFinite(ended) ? ended : null, now + Math.max(1, Math.ceil(ttlMs)));
    });
  }

  async readRecord(id: string): Promise<Record<string, string> | null> {
    const row = this.sql('SELECT fields FROM "$t_records" WHERE id = ? AND expires_at > ?').get(id, Date.now()) as Row | undefined;
    return row ? (JSON.parse(String(row.fields)) as Record<string, string>) : null;
  }

  async failedRecords(limit = 100): Promise<string[]> {
    const now = Date.now();
    // Lapsed records go when next looked at.
    this.sql('DELETE FROM "$t_records" WHERE expires_at <= ?').run(now);
    const rows = this.sql(`SELECT id FROM "$t_records" WHERE state = 'failed' ORDER BY ended DESC, id LIMIT ?`).all(limit) as Row[];
    return rows.map((row) => String(row.id));
  }

  async failedCount(): Promise<number> {
    const row = this.sql(`SELECT count(*) AS n FROM "$t_records" WHERE state = 'failed' AND expires_at > ?`).get(Date.now()) as Row;
    return Number(row.n);
  }

  async flushAll(): Promise<void> {
    this.atomically(() => {
      for (const table of ['queue', 'schedule', 'data', 'counters', 'dead', 'leases', 'status', 'events', 'records']) this.sql(`DELETE FROM "$t_${table}"`).run();
    });
  }
}
