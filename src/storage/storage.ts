/**
 * The contract every backend keeps. Storages move opaque strings (serialized
 * messages and results); they never look inside them, so one serializer
 * decides the format for all of them.
 *
 * The queue is claim → ack: `dequeue` hands a message to one worker and keeps
 * it, marked as that worker's, until `ack` removes it. A message whose worker
 * never acks (it crashed) can be put back with `requeue`, so an accepted task
 * is never lost between the queue and its result.
 */
export interface Storage {
  /** A name for logs and the banner, such as "redis" or "memory". */
  readonly kind: string;

  /**
   * True when `dequeue` can wait for a message itself (`timeoutMs` is
   * honoured), so workers need not poll.
   */
  readonly blocking: boolean;

  /** True when the queue runs higher `priority` first; otherwise it is first in, first out. */
  readonly ordersByPriority: boolean;

  /** Open connections. Called before first use; calling it twice is harmless. */
  connect(): Promise<void>;
  /**
   * What an operator should fix in the server's setup, said at consumer
   * start (a Redis that may evict keys loses queued tasks without a trace).
   * Absent or empty when all is well or the storage cannot tell.
   */
  setupWarnings?(): Promise<string[]>;
  /**
   * Bring the storage's own layout (tables, for a database) to the version
   * this huey-ts expects, or with `dryRun` only say where it stands: the
   * line for `huey migrate` to print, and whether the layout was (or is now)
   * current. Absent where there is nothing to migrate.
   */
  migrateSchema?(dryRun?: boolean): Promise<{ line: string; current: boolean }>;
  /** Close connections (and those of the storages `forQueue` made). */
  close(): Promise<void>;
  /**
   * The storage of one named queue of this instance (`queue` is the queue's
   * name, or `name#n` for its shard n): its own queue, schedule, claims,
   * leases, dead letters and results, kept apart from every other queue's,
   * on this storage's connection where it can share one. The same object
   * each time for the same name; closed when this one is. The instance's own
   * storage is the default queue's, and keeps what belongs to the whole
   * instance (revocations, locks, rate limits, counters, worker activity).
   * Absent on a storage that has no named queues.
   */
  forQueue?(queue: string): Storage;

  // ---- queue ----

  /** Add a message to the back of the queue. Higher `priority` runs first where the storage orders by priority. */
  enqueue(data: string, priority?: number): Promise<void>;
  /** Add several messages in one round trip where the storage can. */
  enqueueMany(items: ReadonlyArray<{ data: string; priority?: number }>): Promise<void>;
  /**
   * Claim the next message for `workerId`, waiting up to `timeoutMs` if the
   * storage is `blocking` (0 means do not wait). The message stays in the
   * storage, claimed by the worker, until `ack`.
   */
  dequeue(workerId: string, timeoutMs?: number): Promise<Claim | null>;
  /**
   * Claim up to `count` messages for `workerId` in one step, next to run
   * first. When the queue is empty it waits as `dequeue` does and may then
   * return a single message. Each stays claimed until its `ack`. A storage
   * may also peek, in the same step, at the data keys `peek` names for each
   * message (see `ClaimPeek`); one that does not simply leaves `peeked` out.
   */
  dequeueMany(workerId: string, count: number, timeoutMs?: number, peek?: ClaimPeek): Promise<Claim[]>;
  /**
   * Note that a worker has begun running `claim`, so that if its consumer
   * dies the adopter knows this claim ran (and counts it as a failed run)
   * while the others, claimed ahead, go back on the queue untouched. Nothing
   * to await: the storage sends the mark when it suits, at the latest with
   * the claim's own ack or result, or within one turn of the event loop, so
   * a task that finishes at once costs no extra command.
   */
  markStarted(claim: Claim): void;
  /** Forget a claimed message: it was executed, or was re-enqueued under a new form. */
  ack(claim: Claim): Promise<void>;
  /**
   * Settle `claim` by enqueueing the next try of its message (`data`, due at
   * `eta` in the schedule, or in the queue now when null, at `priority`) and
   * acking the claim, in one step: a consumer that dies between the two can
   * neither lose the retry nor leave the claim to run again beside it.
   * Without it, a retry is enqueued, then the claim acked.
   */
  retryAndAck?(claim: Claim, data: string, eta: number | null, priority: number): Promise<void>;
  /** Put every message claimed by `workerId` back at the front of the queue. Returns how many. */
  requeue(workerId: string): Promise<number>;
  /**
   * Put these claims of one worker, claimed ahead and never started, back at
   * the front of the queue in the order given (the first runs next), for
   * another worker to take. Claims no longer held are skipped. Returns how many moved.
   */
  release(claims: readonly Claim[]): Promise<number>;
  /** Messages claimed by `workerId` and not yet acked, newest first; each can be acked or dead-lettered. */
  claimed(workerId: string): Promise<Claim[]>;
  /**
   * Move a claimed message that cannot be run (corrupt, unknown task, too
   * large) to the dead-letter list with the reason, instead of acking it.
   */
  deadLetter(claim: Claim, reason: string): Promise<void>;
  /** Up to `limit` dead letters, newest first. */
  deadLetters(limit?: number): Promise<DeadLetter[]>;
  /** How many dead letters there are. */
  deadLetterCount(): Promise<number>;
  /** Remove one dead letter, as `deadLetters` gave it. True when it was there. */
  deleteDeadLetter(letter: DeadLetter): Promise<boolean>;
  /** Messages waiting in the queue (not claimed). */
  queueSize(): Promise<number>;
  /** Waiting messages by priority, highest first; null where the storage does not order by priority. */
  queueSizeByPriority(): Promise<Array<[priority: number, count: number]> | null>;
  /** Up to `limit` waiting messages, next to run first. */
  enqueuedItems(limit?: number): Promise<string[]>;
  /** Drop every waiting message. */
  flushQueue(): Promise<void>;

  // ---- leases: how claims outlive a consumer that died ----

  /** Give each owner (a consumer and its workers) a lease that runs out `leaseMs` from now. */
  renewLeases(ownerIds: readonly string[], leaseMs: number): Promise<void>;
  /** Drop owners' leases: on a clean stop, once their claims are settled. */
  dropLeases(ownerIds: readonly string[]): Promise<void>;
  /** Owners whose lease has run out: their consumer stopped renewing it. */
  expiredLeases(): Promise<string[]>;
  /**
   * Take over the claims of `ownerId`, whose lease ran out, and drop the
   * lease, in one step: of several consumers trying at once, one gets them.
   * Claims whose run had started (`markStarted`) move into the claims of
   * `adopterId`, still marked started, for it to settle as failed runs.
   * Claims that never started go back to the front of the queue untouched.
   * The oldest `concurrency` of those, which may have been running before
   * their start was recorded, each count one stall (the rest were only
   * claimed ahead); one put back more than `maxStalls` times moves to the
   * adopter instead, listed in `stalled`, to be failed for good: a message
   * that kills every consumer before its start is even recorded must not go
   * round for ever. Returns null when the lease is no longer expired
   * (renewed, or adopted by another).
   */
  adoptClaims(ownerId: string, adopterId: string, maxStalls: number, concurrency: number): Promise<Adoption | null>;

  // ---- schedule: messages that wait for a time ----

  /** Keep `data` until `timestamp` (ms since the epoch); it then enqueues at `priority`. */
  addToSchedule(data: string, timestamp: number, priority?: number): Promise<void>;
  /** Remove and return every message due at or before `timestamp`. */
  readSchedule(timestamp: number): Promise<string[]>;
  /**
   * Atomically move every message due at or before `timestamp` from the
   * schedule to the queue, so that two schedulers never both move one.
   * Returns how many moved, and when the soonest message left is due (in
   * the same step, so a scheduler can wake then without asking again).
   */
  enqueueDue(timestamp: number): Promise<DueMove>;
  /**
   * Remove one scheduled message, as `scheduledItems` gave it (with the
   * `priority` it was scheduled at). True when it was there; false when it
   * had gone (moved to the queue when due, or removed by another).
   */
  removeScheduled(data: string, priority?: number): Promise<boolean>;
  scheduleSize(): Promise<number>;
  /** Up to `limit` scheduled messages, soonest first. */
  scheduledItems(limit?: number): Promise<string[]>;
  flushSchedule(): Promise<void>;

  // ---- key/value data: results, revocation flags, locks ----
  //
  // A value stored with a time to live (`putResult` with `ttlMs`) is present
  // to every method below until it lapses, exactly as one without, and absent
  // to every one of them after. Counters (`increment`, `putIfGreater`) live
  // apart: none of these methods sees them.

  /** Store `value` at `key` for good, replacing any value there (and its time to live). */
  putData(key: string, value: string): Promise<void>;
  /**
   * Store a task's result under its id (kept `ttlMs` when given, for good
   * otherwise; read it with peekData/popData) and notify watchers of that id.
   * With `ack`, also ack that claim in the same step.
   */
  putResult(id: string, value: string, ttlMs?: number, ack?: Claim): Promise<void>;
  /**
   * Call `listener` whenever a result for `id` is stored. Resolves once the
   * storage is listening, to a function that stops listening; a reader that
   * registers before it reads cannot miss the notification. Resolves to null
   * when the storage cannot notify (readers then poll).
   */
  watchResult(id: string, listener: () => void): Promise<(() => void) | null>;
  /** The value at `key`, or null. */
  peekData(key: string): Promise<string | null>;
  /**
   * The values at `keys` written with `putData` (flags, locks: what a worker
   * reads for every batch), null where empty, in one round trip. A result
   * stored with a time to live need not be among them: read it with `peekData`.
   */
  peekDataMany(keys: readonly string[]): Promise<Array<string | null>>;
  /** The value at `key` (null if none), removed in the same step. */
  popData(key: string): Promise<string | null>;
  /** Set `key` (for good) only if it is empty. True when this call set it. */
  putIfEmpty(key: string, value: string): Promise<boolean>;
  /** Delete `key`. True when it existed. */
  deleteData(key: string): Promise<boolean>;
  /** Delete `key` only while it still holds `value` (compare-and-delete). True when deleted. */
  deleteIfEqual(key: string, value: string): Promise<boolean>;
  hasDataForKey(key: string): Promise<boolean>;
  /** How many keys the key/value data holds (results, flags, locks; no counters). */
  resultStoreSize(): Promise<number>;
  /** Every key and value of the key/value data (no counters). */
  resultItems(): Promise<Record<string, string>>;
  /** Drop all key/value data. Counters stay: they are bookkeeping (enqueue totals, open windows and chords, periodic marks), not results. */
  flushResults(): Promise<void>;
  /** Up to `limit` keys of the key/value data that start with `prefix` (revocation flags, locks). */
  dataKeys(prefix: string, limit?: number): Promise<string[]>;

  // ---- counters: numbers kept apart from the key/value data ----
  //
  // A counter and a data key of the same name never affect each other, and
  // counters never show in resultItems, resultStoreSize or dataKeys. Only
  // `flushAll` and `deleteCounter` remove them.

  /** Add `by` to the counter `key` (0 when absent) and return the new value, atomically. */
  increment(key: string, by?: number): Promise<number>;
  /**
   * Set the counter `key` to `value` only if it is absent or smaller: a
   * high-water mark. True when this call raised it. Several schedulers use it
   * so that only one enqueues a periodic task for a given minute.
   */
  putIfGreater(key: string, value: number): Promise<boolean>;
  /** Every counter whose key starts with `prefix`, by key. */
  counters(prefix: string): Promise<Record<string, number>>;
  /** Remove the counter `key`. True when it existed. */
  deleteCounter(key: string): Promise<boolean>;

  // ---- records: what became of each task, by id ----

  /**
   * Merge `fields` into the record of task `id` and keep it `ttlMs` from now
   * (each write sets the time anew). A record whose `state` becomes `failed`
   * is listed by `failedRecords` (the latest to fail first) until it lapses
   * or its state changes.
   */
  writeRecord(id: string, fields: Readonly<Record<string, string>>, ttlMs: number): Promise<void>;
  /** Every field of task `id`'s record, or null when it has none (never seen, or lapsed). */
  readRecord(id: string): Promise<Record<string, string> | null>;
  /** Ids of the tasks whose record says `failed`, the latest to end first, at most `limit`. */
  failedRecords(limit?: number): Promise<string[]>;
  /** How many tasks `failedRecords` would list without a limit. */
  failedCount(): Promise<number>;

  // ---- activity: what workers report for the dashboard, the admin command and metrics ----

  /** Keep `value` as the latest status of worker `id`, replacing the one before. */
  putStatus(id: string, value: string): Promise<void>;
  /** Every worker's latest status, by worker id. */
  statuses(): Promise<Record<string, string>>;
  /** Forget worker `id`'s status: it stopped. */
  dropStatus(id: string): Promise<void>;
  /** Add events (newest last) to the event log, keeping only the newest `keep`. */
  pushEvents(values: readonly string[], keep: number): Promise<void>;
  /** Up to `limit` events, newest first. */
  events(limit?: number): Promise<string[]>;

  /** Drop everything this instance keeps: queue, claims, schedule, data, counters, records and activity. */
  flushAll(): Promise<void>;
}

/** What `enqueueDue` did. */
export interface DueMove {
  /** Messages moved to the queue. */
  readonly moved: number;
  /** When the soonest message left in the schedule is due (ms since the epoch), or null when it is empty. */
  readonly next: number | null;
}

/** A message handed to one worker, kept until acked. */
export interface Claim {
  readonly data: string;
  readonly workerId: string;
  /** The storage's own handle on the claim, when it differs from `data`; pass claims back unchanged. */
  readonly receipt?: string;
  /**
   * What the claim's step read of `ClaimPeek`'s keys, with the id and task
   * name the storage found at the start of `data`: to be trusted only when
   * they are the message's own.
   */
  readonly peeked?: { readonly id: string; readonly name: string; readonly values: readonly [string | null, string | null] };
}

/**
 * Data keys a worker reads for every message it claims (its revocation
 * flags): `byId` followed by the message's id, and `byName` followed by its
 * task name. A storage that can read them in the claim's own step saves the
 * worker a round trip per batch.
 */
export interface ClaimPeek {
  readonly byId: string;
  readonly byName: string;
}

/** What `adoptClaims` did with an expired owner's claims. */
export interface Adoption {
  /** Claims whose run had started: now the adopter's, to settle as failed runs. */
  readonly started: number;
  /** Claims that never started, back at the front of the queue. */
  readonly requeued: number;
  /** Claims put back unstarted too often: now the adopter's, to fail for good. */
  readonly stalled: Claim[];
}

/** A message set aside because it could not be run. */
export interface DeadLetter {
  readonly data: string;
  readonly reason: string;
  /** When it was set aside, ms since the epoch. */
  readonly at: number;
}
