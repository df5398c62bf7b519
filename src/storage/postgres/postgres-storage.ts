import type pg from 'pg';
import { StorageError } from '../../errors.js';
import { checkInstanceName } from '../../validate.js';
import type { Adoption, Claim, DeadLetter, DueMove, Storage } from '../storage.js';
import { deferred, type Deferred } from '../deferred.js';
import { migrate, tableNames, type Tables } from './schema.js';

export interface PostgresStorageOptions extends pg.PoolConfig {
  /**
   * The schema huey-ts keeps its tables in, created if missing; one schema
   * holds any number of instances (their tables are named after them).
   * @defaultValue 'huey'
   */
  schema?: string;
}

/** A client that can run a query: a Pool, or a PoolClient or Client inside the caller's transaction. */
export type Queryable = Pick<pg.ClientBase, 'query'>;

type Row = Record<string, unknown>;

/** Most due messages moved by one scheduler step; the rest follow on the next. */
const ENQUEUE_DUE_BATCH = 1000;

/** One run's final step: its result (`key`, `value`, `expiresAt`) and its claim's ack (`receipt`, `owner`). */
interface Settle {
  key?: string;
  value?: string;
  expiresAt?: number | null;
  receipt?: string;
  owner?: string;
}

/** A dequeue waiting for work; `wake(true)` when something may have been enqueued. */
interface Waiter {
  wake(changed: boolean): void;
}

/**
 * Messages to enqueue as one JSON parameter: node-postgres escapes a text
 * array element by element in JavaScript, while JSON.stringify is native,
 * which makes a bulk enqueue several times faster.
 */
const enqueueParam = (items: ReadonlyArray<{ data: string; priority?: number }>): string => JSON.stringify(items.map((item) => [item.data, item.priority ?? 0]));

/** The socket under a pg Client (not in its typings). */
const socketOf = (client: pg.Client) => (client as unknown as { connection?: { stream?: { ref?: () => void; unref?: () => void } } }).connection?.stream;

/** The pg module, loaded on first connect: an app on Redis or SQLite never loads it. */
let pgModule: Promise<typeof pg> | undefined;
const loadPg = (): Promise<typeof pg> => (pgModule ??= import('pg').then((module) => (module.default ?? module) as typeof pg));

/**
 * PostgreSQL, on node-postgres (`pg`) and its pool. The queue is a table:
 * a claim marks rows with their owner (`UPDATE ... WHERE id IN (SELECT ...
 * FOR UPDATE SKIP LOCKED)`, a batch in one statement), an ack deletes the
 * row, a requeue clears the owner, which puts the row back at its old place
 * in line. An enqueue notifies (`pg_notify`, sent on commit), and idle
 * workers wait on one LISTEN connection per instance rather than polling.
 * Because an enqueue is one INSERT, it can run on the caller's own client,
 * inside the caller's transaction (`enqueueIn`): rolled back, it never
 * happened, and the wake-up goes only with the commit.
 */
export class PostgresStorage implements Storage {
  readonly kind = 'postgres';
  readonly blocking = true;
  readonly ordersByPriority = true;
  readonly schema: string;
  readonly tables: Tables;

  private pool?: pg.Pool;
  private connecting?: Promise<pg.Pool>;
  private listener?: pg.Client;
  private listening?: Promise<void>;
  private waiters = new Set<Waiter>();
  private resultWatchers = new Map<string, Set<() => void>>();
  /** Row ids of runs started and not yet recorded: written together after a turn, unless acked first. */
  private startedMarks = new Set<string>();
  private marksFlush?: NodeJS.Immediate;
  private closed = false;
  private readonly queueStorages = new Map<string, PostgresStorage>();
  private readonly home?: PostgresStorage;

  constructor(
    readonly name: string,
    private readonly options: PostgresStorageOptions = {},
    queueOf?: { home: PostgresStorage; queue: string },
  ) {
    checkInstanceName(name);
    this.schema = options.schema ?? 'huey';
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(this.schema)) throw new StorageError(`schema must be a plain SQL name (letters, digits, _), not ${JSON.stringify(this.schema)}`);
    this.home = queueOf?.home;
    this.tables = tableNames(this.schema, name, queueOf?.queue);
  }

  /** The storage of one named queue (or shard) of this instance: tables of its own, on this instance's pool. */
  forQueue(queue: string): PostgresStorage {
    if (this.home) return this.home.forQueue(queue);
    let storage = this.queueStorages.get(queue);
    if (!storage) {
      storage = new PostgresStorage(this.name, this.options, { home: this, queue });
      this.queueStorages.set(queue, storage);
    }
    return storage;
  }

  private get description(): string {
    const { host, port, database, connectionString } = this.options;
    if (connectionString) return connectionString.replace(/\/\/[^@/]*@/, '//');
    return `postgres://${host ?? process.env.PGHOST ?? 'localhost'}:${port ?? process.env.PGPORT ?? 5432}/${database ?? process.env.PGDATABASE ?? ''}`;
  }

  private storageError(error: unknown): StorageError {
    if (error instanceof StorageError) return error;
    return new StorageError(`PostgreSQL at ${this.description}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }

  async connect(): Promise<void> {
    await this.db();
  }

  /**
   * Bring this storage's tables to the version this huey-ts expects (done on
   * first connect anyway), or with `dryRun` only say where they stand: the
   * line `huey migrate` prints.
   */
  async migrateSchema(dryRun = false): Promise<{ line: string; current: boolean }> {
    const owner = this.home ?? this;
    // The instance's pool if it is open; otherwise one that does not migrate as it opens.
    const pool = owner.pool ?? (await owner.openPoolOnce());
    const { from, to } = await migrate(pool, this.tables, dryRun).catch((error: unknown) => {
      throw this.storageError(error);
    });
    const where = `tables "${this.tables.base}_*" in schema "${this.schema}"`;
    if (from === to) return { line: `${where}: at version ${to}, up to date`, current: true };
    return { line: `${where}: ${dryRun ? 'would go' : 'went'} from version ${from} to ${to}`, current: !dryRun };
  }

  /** The pool without the first connect's migration: for a dry run, which must change nothing. */
  protected async openPoolOnce(): Promise<pg.Pool> {
    this.unmigratedPool ??= this.openPool();
    return this.unmigratedPool;
  }
  private unmigratedPool?: Promise<pg.Pool>;

  /** The pool, made and the tables migrated on first use (the instance's pool for a queue's storage). */
  private db(): Promise<pg.Pool> {
    if (this.pool) return Promise.resolve(this.pool);
    this.connecting ??= (async () => {
      const pool = this.home ? await this.home.db() : await this.openPool();
      try {
        await migrate(pool, this.tables);
      } catch (error) {
        throw this.storageError(error);
      }
      this.pool = pool;
      return pool;
    })().catch((error: unknown) => {
      this.connecting = undefined;
      throw this.storageError(error);
    });
    return this.connecting;
  }

  private async openPool(): Promise<pg.Pool> {
    const { schema: _schema, ...poolOptions } = this.options;
    const { Pool } = await loadPg();
    // Idle connections do not hold the process open: a producer that is done exits by itself.
    const pool = new Pool({ allowExitOnIdle: true, ...poolOptions });
    // A connection that drops while idle is replaced by the pool; the error is not a crash.
    pool.on('error', () => {});
    return pool;
  }

  /** One statement on the pool; its errors reach the caller as StorageError. */
  private async query(text: string, params: unknown[] = []): Promise<pg.QueryResult<Row>> {
    const pool = await this.db();
    try {
      return await pool.query(text, params);
    } catch (error) {
      throw this.storageError(error);
    }
  }

  /** Run `fn` in one transaction on one pooled connection. */
  private async transaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const pool = await this.db();
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (error) {
      throw this.storageError(error);
    }
    try {
      await client.query('BEGIN');
      const value = await fn(client);
      await client.query('COMMIT');
      return value;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw this.storageError(error);
    } finally {
      client.release();
    }
  }

  async close(): Promise<void> {
    for (const storage of this.queueStorages.values()) await storage.close();
    this.closed = true;
    for (const waiter of [...this.waiters]) waiter.wake(false);
    // Results and acks still waiting for the end of the turn go now, before the pool does.
    const settling = this.settling?.done.promise;
    if (this.settleFlush) clearImmediate(this.settleFlush);
    this.flushSettles();
    await settling?.catch(() => {});
    this.flushMarks();
    const listener = this.listener;
    this.listener = undefined;
    this.listening = undefined;
    if (listener) {
      // Held open again while it closes: an unreferenced socket would let the process exit mid-close.
      socketOf(listener)?.ref?.();
      await listener.end().catch(() => {});
    }
    if (!this.home) {
      const spare = await this.unmigratedPool?.catch(() => undefined);
      this.unmigratedPool = undefined;
      await spare?.end().catch(() => {});
      const pool = this.pool ?? (await this.connecting?.catch(() => undefined));
      this.pool = undefined;
      this.connecting = undefined;
      await pool?.end().catch(() => {});
    } else {
      this.pool = undefined;
      this.connecting = undefined;
    }
  }

  // ---- notifications: one LISTEN connection per storage, for waiting dequeues and results ----

  /** Listen on this storage's channels; a dropped connection is listened again on the next wait. */
  private listen(): Promise<void> {
    this.listening ??= (async () => {
      await this.db();
      const { Client } = await loadPg();
      const { schema: _schema, max: _max, ...clientOptions } = this.options;
      const client = new Client(clientOptions as pg.ClientConfig);
      client.on('error', () => {
        // Gone: the next wait listens anew, and waiters look again meanwhile.
        if (this.listener === client) {
          this.listener = undefined;
          this.listening = undefined;
        }
        // What was queued while the connection was down was not heard: every worker looks again.
        this.notices++;
        for (const waiter of [...this.waiters]) waiter.wake(true);
      });
      client.on('notification', (notice) => {
        if (notice.channel === this.tables.queueChannel) {
          this.notices++;
          for (const waiter of [...this.waiters]) waiter.wake(true);
        } else if (notice.channel === this.tables.resultChannel && notice.payload) {
          for (const listener of this.resultWatchers.get(notice.payload) ?? []) listener();
        }
      });
      await client.connect();
      await client.query(`LISTEN "${this.tables.queueChannel}"`);
      await client.query(`LISTEN "${this.tables.resultChannel}"`);
      // Once listening, the socket must not hold the process open: only a pending wait does (with its timer).
      socketOf(client)?.unref?.();
      if (this.closed) {
        await client.end();
        return;
      }
      this.listener = client;
    })().catch((error: unknown) => {
      this.listening = undefined;
      throw this.storageError(error);
    });
    return this.listening;
  }

  /** Resolves true when something may have been enqueued, false after `timeoutMs` or at close. */
  private changed(timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const waiter: Waiter = {
        wake: (changed) => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve(changed);
        },
      };
      const timer = setTimeout(() => waiter.wake(false), timeoutMs);
      this.waiters.add(waiter);
    });
  }

  // ---- queue ----

  async enqueue(data: string, priority = 0): Promise<void> {
    await this.query(this.tables.sql.enqueue, [enqueueParam([{ data, priority }])]);
  }

  async enqueueMany(items: ReadonlyArray<{ data: string; priority?: number }>): Promise<void> {
    if (items.length === 0) return;
    await this.query(this.tables.sql.enqueue, [enqueueParam(items)]);
  }

  /**
   * Enqueue with the caller's client, in the caller's transaction: the rows
   * exist if and only if that transaction commits, and waiting workers are
   * woken on the commit (NOTIFY is transactional). Records go in the same
   * transaction.
   */
  async enqueueIn(
    client: Queryable,
    items: ReadonlyArray<{ data: string; priority?: number; eta?: number | null }>,
    records: ReadonlyArray<{ id: string; fields: Record<string, string>; ttlMs: number }> = [],
  ): Promise<void> {
    await this.db();
    const now = items.filter((item) => item.eta === null || item.eta === undefined);
    const later = items.filter((item) => item.eta !== null && item.eta !== undefined);
    try {
      if (now.length > 0) await client.query(this.tables.sql.enqueue, [enqueueParam(now)]);
      for (const item of later) await client.query(`INSERT INTO ${this.tables.schedule} (data, eta, priority) VALUES ($1, $2, $3)`, [item.data, Math.floor(item.eta!), item.priority ?? 0]);
      for (const record of records) await client.query(this.tables.sql.writeRecord, this.recordParams(record.id, record.fields, record.ttlMs));
    } catch (error) {
      throw this.storageError(error);
    }
  }

  async dequeue(workerId: string, timeoutMs = 0): Promise<Claim | null> {
    return (await this.dequeueMany(workerId, 1, timeoutMs))[0] ?? null;
  }

  async dequeueMany(workerId: string, count: number, timeoutMs = 0): Promise<Claim[]> {
    if (!(timeoutMs > 0)) return this.claim(workerId, count);
    const deadline = Date.now() + timeoutMs;
    // Listening before the first look: an enqueue committed after it wakes this wait.
    await this.listen().catch(() => undefined);
    // An idle worker does not look again until something was queued: waiting costs no query.
    let look = !(this.listener && this.emptyAt.get(workerId) === this.notices);
    for (;;) {
      if (look) {
        const seen = this.notices;
        const claims = await this.claim(workerId, count);
        if (claims.length > 0 || this.closed) {
          this.emptyAt.delete(workerId);
          return claims;
        }
        this.emptyAt.set(workerId, seen);
      }
      // Something was queued while it looked: look again rather than wait for a notice already gone by.
      if (this.emptyAt.get(workerId) !== this.notices) {
        look = true;
        continue;
      }
      const left = deadline - Date.now();
      if (left <= 0 || this.closed) return [];
      // Woken by a notice (or a lost connection, which counts as one), or at the deadline.
      look = (await this.changed(left)) || this.emptyAt.get(workerId) !== this.notices;
      if (this.closed) return [];
      if (!this.listener) {
        await this.listen().catch(() => undefined);
        look = true;
      }
    }
  }

  /** Queue notices heard so far, and the count each worker had seen when its last look found nothing. */
  private notices = 0;
  private readonly emptyAt = new Map<string, number>();

  private async claim(workerId: string, count: number): Promise<Claim[]> {
    const { rows } = await this.query(this.tables.sql.claim, [workerId, count]);
    // RETURNING gives no order of its own.
    rows.sort((a, b) => Number(b.priority) - Number(a.priority) || Number(a.id) - Number(b.id));
    return rows.map((row) => ({ data: String(row.data), workerId, receipt: String(row.id) }));
  }

  markStarted(claim: Claim): void {
    this.startedMarks.add(claim.receipt!);
    this.marksFlush ??= setImmediate(() => this.flushMarks());
  }

  /** Record the runs still going: best effort, as a lost mark only makes a run count as unstarted. */
  private flushMarks(): void {
    if (this.marksFlush) clearImmediate(this.marksFlush);
    this.marksFlush = undefined;
    if (this.startedMarks.size === 0 || !this.pool) return this.startedMarks.clear();
    const ids = [...this.startedMarks];
    this.startedMarks.clear();
    this.pool.query(`UPDATE ${this.tables.queue} SET started = true WHERE id = ANY($1::bigint[]) AND owner IS NOT NULL`, [ids]).catch(() => {});
  }

  async ack(claim: Claim): Promise<void> {
    return this.settle({ receipt: claim.receipt!, owner: claim.workerId }, claim);
  }

  /**
   * Results and acks made in the same turn of the event loop go to the
   * database together, in one statement (a worker running 50 tasks at once
   * settles them in one round trip), with the marks of runs started since.
   * Each caller's promise settles with that statement: a failure leaves every
   * claim of it unacked, to run again, as a failed single ack would.
   */
  private settle(step: Settle, claim: Claim): Promise<void> {
    this.startedMarks.delete(claim.receipt!);
    const batch = (this.settling ??= { steps: [], done: deferred() });
    batch.steps.push(step);
    this.settleFlush ??= setImmediate(() => this.flushSettles());
    return batch.done.promise;
  }

  private flushSettles(): void {
    this.settleFlush = undefined;
    const batch = this.settling;
    this.settling = undefined;
    if (!batch) return;
    const marks = [...this.startedMarks];
    this.startedMarks.clear();
    // One result per key in a statement (an upsert cannot touch a row twice): the last one given wins.
    const results = new Map<string, Settle>();
    for (const step of batch.steps) if (step.key !== undefined) results.set(step.key, step);
    const acks = batch.steps.filter((step) => step.receipt !== undefined).map((step) => ({ receipt: step.receipt, owner: step.owner }));
    const given = JSON.stringify([...results.values()].map(({ key, value, expiresAt }) => ({ key, value, expires_at: expiresAt })));
    this.query(this.tables.sql.settle, [given, JSON.stringify(acks), marks]).then(
      () => batch.done.resolve(),
      (error: unknown) => batch.done.reject(error),
    );
  }

  private settling?: { steps: Settle[]; done: Deferred };
  private settleFlush?: NodeJS.Immediate;

  /** The row ids of runs started and not yet recorded, less `settled`'s, which needs none; none are left waiting. */
  private takeMarks(settled: Claim): string[] {
    this.startedMarks.delete(settled.receipt!);
    if (this.startedMarks.size === 0) return [];
    const ids = [...this.startedMarks];
    this.startedMarks.clear();
    return ids;
  }

  async retryAndAck(claim: Claim, data: string, eta: number | null, priority: number): Promise<void> {
    const t = this.tables;
    const marks = this.takeMarks(claim);
    await this.transaction(async (client) => {
      if (eta === null) await client.query(t.sql.enqueue, [enqueueParam([{ data, priority }])]);
      else await client.query(`INSERT INTO ${t.schedule} (data, eta, priority) VALUES ($1, $2, $3)`, [data, Math.floor(eta), priority]);
      await client.query(t.sql.ack, [claim.receipt, claim.workerId, marks]);
    });
  }

  async requeue(workerId: string): Promise<number> {
    return this.putBack(`owner = $1`, [workerId]);
  }

  async release(claims: readonly Claim[]): Promise<number> {
    if (claims.length === 0) return 0;
    return this.putBack(`id = ANY($2::bigint[]) AND owner = $1`, [claims[0]!.workerId, claims.map((claim) => claim.receipt)]);
  }

  /**
   * Clear the owner of the claimed rows `where` picks: each goes back to its
   * old place in line. Waiting workers are woken (on commit). Returns how many.
   */
  private async putBack(where: string, params: unknown[]): Promise<number> {
    const { rows } = await this.query(
      `WITH moved AS (UPDATE ${this.tables.queue} SET owner = NULL, started = false WHERE ${where} RETURNING 1),
        woke AS (SELECT ${this.notify()} FROM (SELECT 1 FROM moved LIMIT 1) AS any_moved)
       SELECT (SELECT count(*) FROM moved)::int AS n, (SELECT count(*) FROM woke) AS woke`,
      params,
    );
    return Number(rows[0]?.n ?? 0);
  }

  async claimed(workerId: string): Promise<Claim[]> {
    const { rows } = await this.query(`SELECT id, data FROM ${this.tables.queue} WHERE owner = $1 ORDER BY id DESC`, [workerId]);
    return rows.map((row) => ({ data: String(row.data), workerId, receipt: String(row.id) }));
  }

  async deadLetter(claim: Claim, reason: string): Promise<void> {
    const t = this.tables;
    await this.transaction(async (client) => {
      await client.query(`DELETE FROM ${t.queue} WHERE id = $1 AND owner = $2`, [claim.receipt, claim.workerId]);
      await client.query(`INSERT INTO ${t.dead} (data, reason, at) VALUES ($1, $2, $3)`, [claim.data, reason, Date.now()]);
    });
  }

  async deadLetters(limit = -1): Promise<DeadLetter[]> {
    const { rows } = await this.query(`SELECT data, reason, at FROM ${this.tables.dead} ORDER BY id DESC LIMIT $1`, [limit < 0 ? null : limit]);
    return rows.map((row) => ({ data: String(row.data), reason: String(row.reason), at: Number(row.at) }));
  }

  async deadLetterCount(): Promise<number> {
    return Number((await this.query(`SELECT count(*) AS n FROM ${this.tables.dead}`)).rows[0]!.n);
  }

  async deleteDeadLetter(letter: DeadLetter): Promise<boolean> {
    const t = this.tables.dead;
    const { rowCount } = await this.query(`DELETE FROM ${t} WHERE id = (SELECT id FROM ${t} WHERE data = $1 AND reason = $2 AND at = $3 LIMIT 1)`, [letter.data, letter.reason, letter.at]);
    return (rowCount ?? 0) > 0;
  }

  async queueSize(): Promise<number> {
    return Number((await this.query(`SELECT count(*) AS n FROM ${this.tables.queue} WHERE owner IS NULL`)).rows[0]!.n);
  }

  async queueSizeByPriority(): Promise<Array<[number, number]>> {
    const { rows } = await this.query(`SELECT priority, count(*) AS n FROM ${this.tables.queue} WHERE owner IS NULL GROUP BY priority ORDER BY priority DESC`);
    return rows.map((row) => [Number(row.priority), Number(row.n)]);
  }

  async enqueuedItems(limit = -1): Promise<string[]> {
    const { rows } = await this.query(`SELECT data FROM ${this.tables.queue} WHERE owner IS NULL ORDER BY priority DESC, id LIMIT $1`, [limit < 0 ? null : limit]);
    return rows.map((row) => String(row.data));
  }

  async flushQueue(): Promise<void> {
    await this.query(`DELETE FROM ${this.tables.queue} WHERE owner IS NULL`);
  }

  /** The expression that wakes this storage's waiting workers, in the statement that queued work (sent on its commit). */
  private notify(): string {
    return `pg_notify('${this.tables.queueChannel}', '')`;
  }

  // ---- leases ----

  async renewLeases(ownerIds: readonly string[], leaseMs: number): Promise<void> {
    if (ownerIds.length === 0) return;
    await this.query(
      `INSERT INTO ${this.tables.leases} (owner, deadline) SELECT unnest($1::text[]), $2
       ON CONFLICT (owner) DO UPDATE SET deadline = excluded.deadline`,
      [[...ownerIds], Date.now() + leaseMs],
    );
  }

  async dropLeases(ownerIds: readonly string[]): Promise<void> {
    if (ownerIds.length === 0) return;
    await this.query(`DELETE FROM ${this.tables.leases} WHERE owner = ANY($1::text[])`, [[...ownerIds]]);
  }

  async expiredLeases(): Promise<string[]> {
    const { rows } = await this.query(`SELECT owner FROM ${this.tables.leases} WHERE deadline < $1`, [Date.now()]);
    return rows.map((row) => String(row.owner));
  }

  async adoptClaims(ownerId: string, adopterId: string, maxStalls: number, concurrency: number): Promise<Adoption | null> {
    const t = this.tables;
    const adoption = await this.transaction(async (client) => {
      const gone = await client.query(`DELETE FROM ${t.leases} WHERE owner = $1 AND deadline < $2`, [ownerId, Date.now()]);
      if (!gone.rowCount) return null;
      // As on SQLite: the oldest `concurrency` unstarted rows count a stall; over the limit they
      // go to the adopter, as do the started ones; the rest go back in line at their old place.
      const slots = `(SELECT id FROM ${t.queue} WHERE owner = $1 ORDER BY priority DESC, id LIMIT $2)`;
      await client.query(`UPDATE ${t.queue} SET stalls = stalls + 1 WHERE started = false AND id IN ${slots}`, [ownerId, concurrency]);
      const stalledRows = await client.query(`UPDATE ${t.queue} SET owner = $3 WHERE owner = $1 AND started = false AND stalls > $4 AND id IN ${slots} RETURNING id, data`, [ownerId, concurrency, adopterId, maxStalls]);
      const started = await client.query(`UPDATE ${t.queue} SET owner = $2 WHERE owner = $1 AND started = true`, [ownerId, adopterId]);
      const requeued = await client.query(`UPDATE ${t.queue} SET owner = NULL WHERE owner = $1`, [ownerId]);
      if (requeued.rowCount) await client.query(`SELECT ${this.notify()}`);
      const stalled = stalledRows.rows.map((row) => ({ data: String(row.data), workerId: adopterId, receipt: String(row.id) }));
      return { started: started.rowCount ?? 0, requeued: requeued.rowCount ?? 0, stalled };
    });
    return adoption;
  }

  // ---- schedule ----

  async addToSchedule(data: string, timestamp: number, priority = 0): Promise<void> {
    await this.query(`INSERT INTO ${this.tables.schedule} (data, eta, priority) VALUES ($1, $2, $3)`, [data, Math.floor(timestamp), priority]);
  }

  async removeScheduled(data: string): Promise<boolean> {
    const t = this.tables.schedule;
    const { rowCount } = await this.query(`DELETE FROM ${t} WHERE id = (SELECT id FROM ${t} WHERE data = $1 ORDER BY eta, id LIMIT 1 FOR UPDATE SKIP LOCKED)`, [data]);
    return (rowCount ?? 0) > 0;
  }

  async readSchedule(timestamp: number): Promise<string[]> {
    const t = this.tables.schedule;
    const { rows } = await this.query(`DELETE FROM ${t} WHERE id IN (SELECT id FROM ${t} WHERE eta <= $1 FOR UPDATE SKIP LOCKED) RETURNING data, eta, id`, [timestamp]);
    rows.sort((a, b) => Number(a.eta) - Number(b.eta) || Number(a.id) - Number(b.id));
    return rows.map((row) => String(row.data));
  }

  async enqueueDue(timestamp: number): Promise<DueMove> {
    let total = 0;
    for (;;) {
      // One statement a batch: rows leave the schedule and enter the queue together, in due order,
      // and rows another scheduler is moving are skipped, not waited for.
      const { rows } = await this.query(this.tables.sql.enqueueDue, [timestamp, ENQUEUE_DUE_BATCH]);
      const moved = Number(rows[0]?.moved ?? 0);
      total += moved;
      if (moved < ENQUEUE_DUE_BATCH) {
        const next = rows[0]?.next;
        return { moved: total, next: next === null || next === undefined ? null : Number(next) };
      }
    }
  }

  async scheduleSize(): Promise<number> {
    return Number((await this.query(`SELECT count(*) AS n FROM ${this.tables.schedule}`)).rows[0]!.n);
  }

  async scheduledItems(limit = -1): Promise<string[]> {
    const { rows } = await this.query(`SELECT data FROM ${this.tables.schedule} ORDER BY eta, id LIMIT $1`, [limit < 0 ? null : limit]);
    return rows.map((row) => String(row.data));
  }

  async flushSchedule(): Promise<void> {
    await this.query(`DELETE FROM ${this.tables.schedule}`);
  }

  // ---- key/value data: an expired row counts as absent; the next write to its key replaces it ----

  private static readonly LIVE = '(expires_at IS NULL OR expires_at > $now)';

  /** `text` with `$now` as the parameter after `params`, set to now. */
  private live(text: string, params: unknown[]): [string, unknown[]] {
    return [text.replaceAll('$now', `$${params.length + 1}`), [...params, Date.now()]];
  }

  async putData(key: string, value: string): Promise<void> {
    await this.query(`INSERT INTO ${this.tables.data} (key, value, expires_at) VALUES ($1, $2, NULL) ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = NULL`, [key, value]);
  }

  async putResult(id: string, value: string, ttlMs?: number, ack?: Claim): Promise<void> {
    const expiresAt = ttlMs ? Date.now() + ttlMs : null;
    if (!ack) {
      await this.query(this.tables.sql.putResult, [id, value, expiresAt]);
      return;
    }
    // The result and the ack in one statement, with those of other runs ending in the same turn.
    return this.settle({ key: id, value, expiresAt, receipt: ack.receipt!, owner: ack.workerId }, ack);
  }

  async watchResult(id: string, listener: () => void): Promise<() => void> {
    const listeners = this.resultWatchers.get(id) ?? new Set();
    listeners.add(listener);
    this.resultWatchers.set(id, listeners);
    await this.listen();
    return () => {
      listeners.delete(listener);
      if (listeners.size === 0) this.resultWatchers.delete(id);
    };
  }

  async peekData(key: string): Promise<string | null> {
    const { rows } = await this.query(...this.live(`SELECT value FROM ${this.tables.data} WHERE key = $1 AND ${PostgresStorage.LIVE}`, [key]));
    return rows[0] ? String(rows[0].value) : null;
  }

  async peekDataMany(keys: readonly string[]): Promise<Array<string | null>> {
    if (keys.length === 0) return [];
    const { rows } = await this.query(...this.live(`SELECT key, value FROM ${this.tables.data} WHERE key = ANY($1::text[]) AND ${PostgresStorage.LIVE}`, [[...keys]]));
    const values = new Map(rows.map((row) => [String(row.key), String(row.value)]));
    return keys.map((key) => values.get(key) ?? null);
  }

  async popData(key: string): Promise<string | null> {
    const { rows } = await this.query(...this.live(`DELETE FROM ${this.tables.data} WHERE key = $1 AND ${PostgresStorage.LIVE} RETURNING value`, [key]));
    return rows[0] ? String(rows[0].value) : null;
  }

  async putIfEmpty(key: string, value: string): Promise<boolean> {
    // One statement: a live row blocks the insert; an expired one is replaced.
    const { rowCount } = await this.query(
      `INSERT INTO ${this.tables.data} AS d (key, value, expires_at) VALUES ($1, $2, NULL)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = NULL
       WHERE d.expires_at IS NOT NULL AND d.expires_at <= $3`,
      [key, value, Date.now()],
    );
    return rowCount === 1;
  }

  async deleteData(key: string): Promise<boolean> {
    const { rowCount } = await this.query(...this.live(`DELETE FROM ${this.tables.data} WHERE key = $1 AND ${PostgresStorage.LIVE}`, [key]));
    return (rowCount ?? 0) > 0;
  }

  async deleteIfEqual(key: string, value: string): Promise<boolean> {
    const { rowCount } = await this.query(...this.live(`DELETE FROM ${this.tables.data} WHERE key = $1 AND value = $2 AND ${PostgresStorage.LIVE}`, [key, value]));
    return (rowCount ?? 0) > 0;
  }

  async hasDataForKey(key: string): Promise<boolean> {
    const { rowCount } = await this.query(...this.live(`SELECT 1 FROM ${this.tables.data} WHERE key = $1 AND ${PostgresStorage.LIVE}`, [key]));
    return (rowCount ?? 0) > 0;
  }

  async resultStoreSize(): Promise<number> {
    return Number((await this.query(...this.live(`SELECT count(*) AS n FROM ${this.tables.data} WHERE ${PostgresStorage.LIVE}`, []))).rows[0]!.n);
  }

  async resultItems(): Promise<Record<string, string>> {
    const { rows } = await this.query(...this.live(`SELECT key, value FROM ${this.tables.data} WHERE ${PostgresStorage.LIVE}`, []));
    return Object.fromEntries(rows.map((row) => [String(row.key), String(row.value)]));
  }

  async flushResults(): Promise<void> {
    await this.query(`DELETE FROM ${this.tables.data}`);
  }

  async dataKeys(prefix: string, limit = -1): Promise<string[]> {
    // left(), not LIKE: a prefix may hold % or _.
    const { rows } = await this.query(
      ...this.live(`SELECT key FROM ${this.tables.data} WHERE left(key, $1) = $2 AND ${PostgresStorage.LIVE} LIMIT $3`, [prefix.length, prefix, limit < 0 ? null : limit]),
    );
    return rows.map((row) => String(row.key));
  }

  // ---- counters ----

  async increment(key: string, by = 1): Promise<number> {
    const { rows } = await this.query(
      `INSERT INTO ${this.tables.counters} AS c (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = c.value + excluded.value RETURNING value`,
      [key, by],
    );
    return Number(rows[0]!.value);
  }

  async putIfGreater(key: string, value: number): Promise<boolean> {
    const { rowCount } = await this.query(
      `INSERT INTO ${this.tables.counters} AS c (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value WHERE c.value < excluded.value`,
      [key, value],
    );
    return rowCount === 1;
  }

  async counters(prefix: string): Promise<Record<string, number>> {
    const { rows } = await this.query(`SELECT key, value FROM ${this.tables.counters} WHERE left(key, $1) = $2`, [prefix.length, prefix]);
    return Object.fromEntries(rows.map((row) => [String(row.key), Number(row.value)]));
  }

  async deleteCounter(key: string): Promise<boolean> {
    const { rowCount } = await this.query(`DELETE FROM ${this.tables.counters} WHERE key = $1`, [key]);
    return (rowCount ?? 0) > 0;
  }

  // ---- records ----

  private recordParams(id: string, fields: Readonly<Record<string, string>>, ttlMs: number): unknown[] {
    const ended = fields.ended === undefined ? null : Number(fields.ended);
    return [id, JSON.stringify(fields), fields.state ?? null, Number.isFinite(ended) ? ended : null, Date.now() + Math.max(1, Math.ceil(ttlMs)), Date.now()];
  }

  async writeRecord(id: string, fields: Readonly<Record<string, string>>, ttlMs: number): Promise<void> {
    await this.query(this.tables.sql.writeRecord, this.recordParams(id, fields, ttlMs));
  }

  async readRecord(id: string): Promise<Record<string, string> | null> {
    const { rows } = await this.query(`SELECT fields FROM ${this.tables.records} WHERE id = $1 AND expires_at > $2`, [id, Date.now()]);
    return rows[0] ? (rows[0].fields as Record<string, string>) : null;
  }

  async failedRecords(limit = 100): Promise<string[]> {
    const now = Date.now();
    // Lapsed records go when next looked at.
    await this.query(`DELETE FROM ${this.tables.records} WHERE expires_at <= $1`, [now]);
    const { rows } = await this.query(`SELECT id FROM ${this.tables.records} WHERE state = 'failed' ORDER BY ended DESC NULLS LAST, id LIMIT $1`, [limit]);
    return rows.map((row) => String(row.id));
  }

  async failedCount(): Promise<number> {
    return Number((await this.query(`SELECT count(*) AS n FROM ${this.tables.records} WHERE state = 'failed' AND expires_at > $1`, [Date.now()])).rows[0]!.n);
  }

  // ---- activity ----

  async putStatus(id: string, value: string): Promise<void> {
    await this.query(`INSERT INTO ${this.tables.status} (worker, value) VALUES ($1, $2) ON CONFLICT (worker) DO UPDATE SET value = excluded.value`, [id, value]);
  }

  async statuses(): Promise<Record<string, string>> {
    const { rows } = await this.query(`SELECT worker, value FROM ${this.tables.status}`);
    return Object.fromEntries(rows.map((row) => [String(row.worker), String(row.value)]));
  }

  async dropStatus(id: string): Promise<void> {
    await this.query(`DELETE FROM ${this.tables.status} WHERE worker = $1`, [id]);
  }

  async pushEvents(values: readonly string[], keep: number): Promise<void> {
    if (values.length === 0) return;
    const t = this.tables.events;
    await this.transaction(async (client) => {
      await client.query(`INSERT INTO ${t} (value) SELECT unnest($1::text[])`, [[...values]]);
      await client.query(`DELETE FROM ${t} WHERE id <= (SELECT max(id) FROM ${t}) - $1`, [keep]);
    });
  }

  async events(limit = -1): Promise<string[]> {
    const { rows } = await this.query(`SELECT value FROM ${this.tables.events} ORDER BY id DESC LIMIT $1`, [limit < 0 ? null : limit]);
    return rows.map((row) => String(row.value));
  }

  async flushAll(): Promise<void> {
    const t = this.tables;
    await this.transaction(async (client) => {
      for (const table of [t.queue, t.schedule, t.data, t.counters, t.dead, t.leases, t.status, t.events, t.records]) await client.query(`DELETE FROM ${table}`);
    });
  }
}
