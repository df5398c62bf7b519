import type { Adoption, Claim, DeadLetter, DueMove, Storage } from './storage.js';

interface Queued {
  data: string;
  priority: number;
  /** Set while claimed, once a worker has begun running it. */
  started?: boolean;
}

/**
 * Everything in this process's memory: for immediate mode and unit tests.
 * It is lost when the process exits and is not shared with other processes.
 */
export class MemoryStorage implements Storage {
  readonly kind = 'memory';
  readonly blocking = true;
  readonly ordersByPriority = true;

  // Kept ordered: higher priority first, FIFO within a priority.
  private queue: Queued[] = [];
  private claims = new Map<string, Queued[]>();
  private schedule: Array<{ data: string; timestamp: number; priority: number }> = [];
  private data = new Map<string, string>();
  private dead: DeadLetter[] = [];
  private waiters: Array<() => void> = [];
  private leases = new Map<string, number>();
  private status = new Map<string, string>();
  /** Newest first. */
  private eventLog: string[] = [];
  /** When each value stored with a time to live lapses, ms since the epoch. */
  private expiries = new Map<string, number>();
  /** Counters and high-water marks, apart from the key/value data. */
  private counts = new Map<string, number>();
  private watchers = new Map<string, Set<() => void>>();
  /** Times each message was put back unstarted from a consumer that died. */
  private stalls = new Map<string, number>();
  /** Each task's record, and when it lapses (ms since the epoch). */
  private records = new Map<string, { fields: Record<string, string>; expiresAt: number }>();
  private recordWrites = 0;

  /** The storages of named queues, made on first use; see `forQueue`. */
  private queueStorages = new Map<string, MemoryStorage>();

  async connect(): Promise<void> {}

  async close(): Promise<void> {
    for (const storage of this.queueStorages.values()) await storage.close();
    for (const wake of this.waiters.splice(0)) wake();
  }

  /** The storage of one named queue (or queue shard, `name#n`): another MemoryStorage, in this process too. */
  forQueue(queue: string): MemoryStorage {
    let storage = this.queueStorages.get(queue);
    if (!storage) {
      storage = new MemoryStorage();
      this.queueStorages.set(queue, storage);
    }
    return storage;
  }

  async enqueue(data: string, priority = 0): Promise<void> {
    this.insert({ data, priority });
  }

  async enqueueMany(items: ReadonlyArray<{ data: string; priority?: number }>): Promise<void> {
    for (const item of items) this.insert({ data: item.data, priority: item.priority ?? 0 });
  }

  private insert(item: Queued, front = false): void {
    // First index whose priority is lower (or, for the front, not higher).
    let lo = 0;
    let hi = this.queue.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const p = this.queue[mid]!.priority;
      if (front ? p > item.priority : p >= item.priority) lo = mid + 1;
      else hi = mid;
    }
    this.queue.splice(lo, 0, item);
    this.waiters.shift()?.();
  }

  async dequeue(workerId: string, timeoutMs = 0): Promise<Claim | null> {
    return (await this.dequeueMany(workerId, 1, timeoutMs))[0] ?? null;
  }

  async dequeueMany(workerId: string, count: number, timeoutMs = 0): Promise<Claim[]> {
    if (this.queue.length === 0 && timeoutMs > 0) await this.waitForItem(timeoutMs);
    const items = this.queue.splice(0, count);
    if (items.length === 0) return [];
    const claims = this.claims.get(workerId) ?? [];
    claims.push(...items);
    this.claims.set(workerId, claims);
    return items.map((item) => ({ data: item.data, workerId }));
  }

  private waitForItem(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(wake);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve();
      }, timeoutMs);
      this.waiters.push(wake);
    });
  }

  private findClaim(claim: Claim): number {
    return this.claims.get(claim.workerId)?.findIndex((item) => item.data === claim.data) ?? -1;
  }

  markStarted(claim: Claim): void {
    const i = this.findClaim(claim);
    if (i >= 0) this.claims.get(claim.workerId)![i]!.started = true;
  }

  async ack(claim: Claim): Promise<void> {
    const i = this.findClaim(claim);
    if (i >= 0) this.claims.get(claim.workerId)!.splice(i, 1);
    this.stalls.delete(claim.data);
  }

  async retryAndAck(claim: Claim, data: string, eta: number | null, priority: number): Promise<void> {
    // In one process's memory nothing can come between the two.
    if (eta === null) await this.enqueue(data, priority);
    else await this.addToSchedule(data, eta, priority);
    await this.ack(claim);
  }

  async release(claims: readonly Claim[]): Promise<number> {
    let moved = 0;
    // Last first, so that the first given ends up at the very front.
    for (const claim of [...claims].reverse()) {
      const i = this.findClaim(claim);
      if (i < 0) continue;
      const [item] = this.claims.get(claim.workerId)!.splice(i, 1);
      this.insert({ data: item!.data, priority: item!.priority }, true);
      moved++;
    }
    return moved;
  }

  async deadLetter(claim: Claim, reason: string): Promise<void> {
    await this.ack(claim);
    this.dead.unshift({ data: claim.data, reason, at: Date.now() });
  }

  async deadLetters(limit = Infinity): Promise<DeadLetter[]> {
    return this.dead.slice(0, limit);
  }

  async deadLetterCount(): Promise<number> {
    return this.dead.length;
  }

  async deleteDeadLetter(letter: DeadLetter): Promise<boolean> {
    const i = this.dead.findIndex((d) => d.data === letter.data && d.reason === letter.reason && d.at === letter.at);
    if (i < 0) return false;
    this.dead.splice(i, 1);
    return true;
  }

  async requeue(workerId: string): Promise<number> {
    const claims = this.claims.get(workerId) ?? [];
    this.claims.delete(workerId);
    // Newest claim first so the oldest ends up at the very front.
    for (const item of [...claims].reverse()) this.insert({ data: item.data, priority: item.priority }, true);
    return claims.length;
  }

  async renewLeases(ownerIds: readonly string[], leaseMs: number): Promise<void> {
    for (const id of ownerIds) this.leases.set(id, Date.now() + leaseMs);
  }

  async dropLeases(ownerIds: readonly string[]): Promise<void> {
    for (const id of ownerIds) this.leases.delete(id);
  }

  async expiredLeases(): Promise<string[]> {
    const now = Date.now();
    return [...this.leases].filter(([, deadline]) => deadline < now).map(([id]) => id);
  }

  async adoptClaims(ownerId: string, adopterId: string, maxStalls: number, concurrency: number): Promise<Adoption | null> {
    const deadline = this.leases.get(ownerId);
    if (deadline === undefined || deadline >= Date.now()) return null;
    const claims = this.claims.get(ownerId) ?? [];
    this.claims.delete(ownerId);
    this.leases.delete(ownerId);
    const adopted = this.claims.get(adopterId) ?? [];
    this.claims.set(adopterId, adopted);
    let started = 0;
    let requeued = 0;
    const stalled: Claim[] = [];
    // Runs start in claim order: only the oldest `concurrency` claims may have been running unrecorded.
    const suspects = new Set(claims.slice(0, concurrency).filter((item) => !item.started));
    // Newest first, each to the front, so the oldest ends up at the very front.
    for (const item of [...claims].reverse()) {
      if (item.started) {
        adopted.push(item);
        started++;
        continue;
      }
      const stalls = (this.stalls.get(item.data) ?? 0) + (suspects.has(item) ? 1 : 0);
      this.stalls.set(item.data, stalls);
      if (suspects.has(item) && stalls > maxStalls) {
        adopted.push(item);
        stalled.push({ data: item.data, workerId: adopterId });
      } else {
        this.insert({ data: item.data, priority: item.priority }, true);
        requeued++;
      }
    }
    return { started, requeued, stalled };
  }

  async claimed(workerId: string): Promise<Claim[]> {
    return (this.claims.get(workerId) ?? []).map((item) => ({ data: item.data, workerId })).reverse();
  }

  async queueSize(): Promise<number> {
    return this.queue.length;
  }

  async enqueuedItems(limit = Infinity): Promise<string[]> {
    return this.queue.slice(0, limit).map((item) => item.data);
  }

  async flushQueue(): Promise<void> {
    this.queue = [];
  }

  async addToSchedule(data: string, timestamp: number, priority = 0): Promise<void> {
    let i = this.schedule.length;
    while (i > 0 && this.schedule[i - 1]!.timestamp > timestamp) i--;
    this.schedule.splice(i, 0, { data, timestamp, priority });
  }

  async removeScheduled(data: string): Promise<boolean> {
    const i = this.schedule.findIndex((item) => item.data === data);
    if (i === -1) return false;
    this.schedule.splice(i, 1);
    return true;
  }

  private takeDue(timestamp: number) {
    let n = 0;
    while (n < this.schedule.length && this.schedule[n]!.timestamp <= timestamp) n++;
    return this.schedule.splice(0, n);
  }

  async readSchedule(timestamp: number): Promise<string[]> {
    return this.takeDue(timestamp).map((item) => item.data);
  }

  async enqueueDue(timestamp: number): Promise<DueMove> {
    const due = this.takeDue(timestamp);
    for (const item of due) this.insert({ data: item.data, priority: item.priority });
    return { moved: due.length, next: this.schedule[0]?.timestamp ?? null };
  }

  async scheduleSize(): Promise<number> {
    return this.schedule.length;
  }

  async scheduledItems(limit = Infinity): Promise<string[]> {
    return this.schedule.slice(0, limit).map((item) => item.data);
  }

  async flushSchedule(): Promise<void> {
    this.schedule = [];
  }

  async putData(key: string, value: string): Promise<void> {
    this.data.set(key, value);
    this.expiries.delete(key);
  }

  async putResult(id: string, value: string, ttlMs?: number, ack?: Claim): Promise<void> {
    if (ack) await this.ack(ack);
    this.data.set(id, value);
    if (ttlMs) this.expiries.set(id, Date.now() + ttlMs);
    else this.expiries.delete(id);
    for (const listener of this.watchers.get(id) ?? []) listener();
  }

  async watchResult(id: string, listener: () => void): Promise<() => void> {
    const listeners = this.watchers.get(id) ?? new Set();
    listeners.add(listener);
    this.watchers.set(id, listeners);
    return () => {
      listeners.delete(listener);
      if (listeners.size === 0) this.watchers.delete(id);
    };
  }

  /** Drop `key` if its time to live has passed; true when it is (still) there. */
  private live(key: string): boolean {
    const expiry = this.expiries.get(key);
    if (expiry !== undefined && expiry <= Date.now()) {
      this.data.delete(key);
      this.expiries.delete(key);
    }
    return this.data.has(key);
  }

  /** Every live key, lapsed ones dropped on the way. */
  private liveKeys(): string[] {
    return [...this.data.keys()].filter((key) => this.live(key));
  }

  private remove(key: string): boolean {
    this.expiries.delete(key);
    return this.data.delete(key);
  }

  async peekData(key: string): Promise<string | null> {
    return this.live(key) ? this.data.get(key)! : null;
  }

  async peekDataMany(keys: readonly string[]): Promise<Array<string | null>> {
    return keys.map((key) => (this.live(key) ? this.data.get(key)! : null));
  }

  async popData(key: string): Promise<string | null> {
    const value = this.live(key) ? this.data.get(key)! : null;
    this.remove(key);
    return value;
  }

  async putIfEmpty(key: string, value: string): Promise<boolean> {
    if (this.live(key)) return false;
    this.data.set(key, value);
    return true;
  }

  async deleteData(key: string): Promise<boolean> {
    return this.live(key) && this.remove(key);
  }

  async deleteIfEqual(key: string, value: string): Promise<boolean> {
    return this.live(key) && this.data.get(key) === value && this.remove(key);
  }

  async hasDataForKey(key: string): Promise<boolean> {
    return this.live(key);
  }

  async resultStoreSize(): Promise<number> {
    return this.liveKeys().length;
  }

  async resultItems(): Promise<Record<string, string>> {
    return Object.fromEntries(this.liveKeys().map((key) => [key, this.data.get(key)!]));
  }

  async flushResults(): Promise<void> {
    this.data.clear();
    this.expiries.clear();
  }

  async dataKeys(prefix: string, limit = Infinity): Promise<string[]> {
    return [...this.data.keys()].filter((key) => key.startsWith(prefix) && this.live(key)).slice(0, limit);
  }

  async increment(key: string, by = 1): Promise<number> {
    const value = (this.counts.get(key) ?? 0) + by;
    this.counts.set(key, value);
    return value;
  }

  async putIfGreater(key: string, value: number): Promise<boolean> {
    const current = this.counts.get(key);
    if (current !== undefined && current >= value) return false;
    this.counts.set(key, value);
    return true;
  }

  async counters(prefix: string): Promise<Record<string, number>> {
    return Object.fromEntries([...this.counts].filter(([key]) => key.startsWith(prefix)));
  }

  async deleteCounter(key: string): Promise<boolean> {
    return this.counts.delete(key);
  }

  async queueSizeByPriority(): Promise<Array<[number, number]>> {
    const counts = new Map<number, number>();
    for (const item of this.queue) counts.set(item.priority, (counts.get(item.priority) ?? 0) + 1);
    return [...counts].sort((a, b) => b[0] - a[0]);
  }

  async putStatus(id: string, value: string): Promise<void> {
    this.status.set(id, value);
  }

  async statuses(): Promise<Record<string, string>> {
    return Object.fromEntries(this.status);
  }

  async dropStatus(id: string): Promise<void> {
    this.status.delete(id);
  }

  async pushEvents(values: readonly string[], keep: number): Promise<void> {
    this.eventLog.unshift(...[...values].reverse());
    this.eventLog.length = Math.min(this.eventLog.length, keep);
  }

  async events(limit = Infinity): Promise<string[]> {
    return this.eventLog.slice(0, limit);
  }

  async writeRecord(id: string, fields: Readonly<Record<string, string>>, ttlMs: number): Promise<void> {
    const now = Date.now();
    // Lapsed records are read as absent; every so many writes they are also dropped, so the map stays bounded.
    if (++this.recordWrites % 1000 === 0) for (const [key, kept] of this.records) if (kept.expiresAt <= now) this.records.delete(key);
    const kept = this.records.get(id);
    const merged = { ...(kept && kept.expiresAt > now ? kept.fields : {}), ...fields };
    this.records.set(id, { fields: merged, expiresAt: now + Math.max(1, ttlMs) });
  }

  async readRecord(id: string): Promise<Record<string, string> | null> {
    const kept = this.records.get(id);
    if (!kept) return null;
    if (kept.expiresAt <= Date.now()) {
      this.records.delete(id);
      return null;
    }
    return { ...kept.fields };
  }

  async failedRecords(limit = 100): Promise<string[]> {
    const now = Date.now();
    const failed: Array<[string, number]> = [];
    for (const [id, kept] of this.records) {
      if (kept.expiresAt <= now) this.records.delete(id);
      else if (kept.fields.state === 'failed') failed.push([id, Number(kept.fields.ended ?? 0)]);
    }
    return failed.sort((a, b) => b[1] - a[1]).slice(0, limit).map(([id]) => id);
  }

  async failedCount(): Promise<number> {
    return (await this.failedRecords(Infinity)).length;
  }

  async flushAll(): Promise<void> {
    this.records.clear();
    this.status.clear();
    this.eventLog = [];
    this.queue = [];
    this.claims.clear();
    this.schedule = [];
    this.data.clear();
    this.expiries.clear();
    this.counts.clear();
    this.dead = [];
    this.leases.clear();
    this.stalls.clear();
  }
}
