import type { RedisClientOptions, RedisClientType } from '@redis/client';
import { HueyError, StorageError } from '../../errors.js';
import { checkInstanceName } from '../../validate.js';
import type { Adoption, Claim, ClaimPeek, DeadLetter, DueMove, Storage } from '../storage.js';
import { deferred, type Deferred } from '../deferred.js';
import { storableText } from '../../storable-text.js';
import {
  ClusterConnection,
  DirectConnection,
  SentinelConnection,
  type RedisClusterConnectionOptions,
  type RedisConnection,
  type RedisSentinelConnectionOptions,
} from './connection.js';
import { scripts } from './lua-script.js';

export interface RedisStorageOptions {
  /** `redis://[[user]:password@]host[:port][/db]`. Default: redis://127.0.0.1:6379. */
  url?: string;
  /** Any other node-redis client option (socket, TLS, reconnect strategy...). Not used with `sentinel`. */
  clientOptions?: RedisClientOptions;
  /**
   * Connect through Redis Sentinel instead of to `url`: node-redis's
   * `RedisSentinelOptions`, e.g. `{ name: 'mymaster', sentinelRootNodes: [{ host, port }] }`,
   * with `nodeClientOptions` (password, TLS...) for the master and
   * `sentinelClientOptions` for the sentinels. Commands go to the master and
   * follow it when Sentinel fails over.
   */
  sentinel?: RedisSentinelConnectionOptions;
  /**
   * Connect to a Redis Cluster instead of to `url`: node-redis's
   * `RedisClusterOptions`, e.g. `{ rootNodes: [{ url: 'redis://10.0.0.1:7000' }] }`,
   * with `defaults` (password, TLS...) for every node. All keys of an instance
   * share the hash tag `{name}`, so they live in one slot: every command goes
   * to that slot's master, following MOVED/ASK and failovers.
   */
  cluster?: RedisClusterConnectionOptions;
  /** Called with connection errors; the client reconnects by itself meanwhile. */
  onError?: (error: Error) => void;
}

/**
 * The key names of one instance, or of one named queue of it. Every key
 * carries the instance name in a hash tag (`{name}`; `{name:queue}` for a
 * named queue), so the keys of one queue hash to one Redis Cluster slot and
 * every multi-key command and script works on a cluster too, while the
 * queues of an instance spread over the cluster's masters.
 */
export class RedisKeys {
  readonly queue: string;
  readonly schedule: string;
  readonly data: string;
  /** Ids of the results kept in keys of their own (with a time to live), scored by when they lapse (ms, Redis clock). */
  readonly resultExpiry: string;
  /** Counters and high-water marks, apart from the data: key → integer. */
  readonly counters: string;
  readonly dead: string;
  /** The channel a stored result's id is published on. */
  readonly resultsChannel: string;
  /** Lease deadlines of consumers and workers: owner id → ms on the Redis server's clock. */
  readonly leases: string;
  /** Each worker's latest status (worker id → JSON), and the capped event log. */
  readonly workers: string;
  readonly events: string;
  /** The priority queue, its sequence counter and wake-up list (PriorityRedisStorage only). */
  readonly priorityQueue: string;
  readonly prioritySequence: string;
  readonly wake: string;
  /** How many times each message was put back unstarted from a dead consumer: sha1 of its receipt → count. */
  readonly stalls: string;
  /** Ids of the tasks whose record says failed, scored by when their record lapses (ms, Redis clock). */
  readonly failed: string;
  private readonly prefix: string;

  constructor(name: string, queue?: string) {
    checkInstanceName(name);
    // A colon is in no instance or queue name, so `{app:emails}` is never another instance's tag.
    this.prefix = queue === undefined ? `huey.{${name}}` : `huey.{${name}:${queue}}`;
    this.queue = `${this.prefix}.queue`;
    this.schedule = `${this.prefix}.schedule`;
    this.data = `${this.prefix}.results`;
    this.resultExpiry = `${this.prefix}.results.expiry`;
    this.counters = `${this.prefix}.counters`;
    this.dead = `${this.prefix}.dead`;
    this.leases = `${this.prefix}.leases`;
    this.workers = `${this.prefix}.workers`;
    this.events = `${this.prefix}.events`;
    this.resultsChannel = `${this.prefix}.results.ready`;
    this.priorityQueue = `${this.prefix}.pqueue`;
    this.prioritySequence = `${this.prefix}.pqueue.seq`;
    this.wake = `${this.prefix}.pqueue.wake`;
    this.stalls = `${this.prefix}.stalls`;
    this.failed = `${this.prefix}.failed`;
  }

  /** A task's record: a hash with a time to live. */
  record(id: string): string {
    return `${this.prefix}.record.${id}`;
  }

  /** A pattern matching every record of this instance. */
  get recordPattern(): string {
    return `${this.prefix}.record.*`;
  }

  /** A result with a time to live, in a key of its own. */
  result(id: string): string {
    return `${this.prefix}.result.${id}`;
  }

  claimed(workerId: string): string {
    return `${this.prefix}.claimed.${workerId}`;
  }

  /** The receipts of a worker's claims whose runs have started. */
  started(workerId: string): string {
    return `${this.prefix}.started.${workerId}`;
  }

  /** A pattern matching every result kept in a key of its own. */
  get resultPattern(): string {
    return `${this.prefix}.result.*`;
  }

  /** A pattern matching every claimed list of this instance. */
  get claimedPattern(): string {
    return `${this.prefix}.claimed.*`;
  }

  /** A pattern matching every started set of this instance. */
  get startedPattern(): string {
    return `${this.prefix}.started.*`;
  }
}

/** A dead letter as the dead list holds it: written and matched for removal the same way. */
const deadLetterEntry = (letter: DeadLetter): string => JSON.stringify({ data: letter.data, reason: letter.reason, at: letter.at });

/** Most due messages moved by one scheduler step; the rest follow on the next. */
const ENQUEUE_DUE_BATCH = 1000;


/** Most records one step carries: a bulk enqueue's go in several. */
const RECORDS_PER_STEP = 1000;


/** The claims of a claim script that peeked: per message its data (a receipt, for the priority queue), id, task name and the two flags (see peek-flags.lua). */
export function peekedClaims(items: ReadonlyArray<string | null>, workerId: string): Claim[] {
  const claims: Claim[] = [];
  for (let at = 0; at < items.length; at += 5) {
    const data = items[at]!;
    const id = items[at + 1];
    const name = items[at + 2];
    claims.push(id && name ? { data, workerId, peeked: { id, name, values: [items[at + 3] ?? null, items[at + 4] ?? null] } } : { data, workerId });
  }
  return claims;
}

/** A SCAN pattern matching every name that starts with `prefix`, its glob characters escaped. */
const startsWith = (prefix: string): string => `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;

/**
 * The production storage, on node-redis. The queue is a list: producers LPUSH,
 * workers move messages from the right end into their own claimed list (a
 * batch in one script, or one with BLMOVE when the queue is empty), and an
 * ack LREMs it from there, searching from the oldest claim, which is usually
 * the one acked.
 */
export class RedisStorage implements Storage {
  readonly kind: string = 'redis';
  readonly blocking = true;
  readonly ordersByPriority: boolean = false;
  readonly keys: RedisKeys;
  /** The client, or under Sentinel the client of the master, that every operation runs on. */
  readonly connection: RedisConnection;

  // Blocking commands hold their connection, so each worker that waits gets its own.
  private blockingClients = new Map<string, Promise<RedisConnection>>();
  private connecting?: Promise<void>;
  private subscribing?: Promise<void>;
  private resultWatchers = new Map<string, Set<() => void>>();
  private everReady = false;
  /**
   * The sockets do not keep the process alive, so a producer that is done
   * exits by itself; this handle does, while any command or connection
   * attempt is in flight (`inFlight` > 0), so none is cut off.
   */
  private keepAlive?: NodeJS.Timeout;
  private inFlight = 0;
  /** Receipts of runs started and not yet recorded, by worker id: they ride on that worker's next ack or result. */
  private startedMarks = new Map<string, string[]>();
  /** Workers whose last blocking wait timed out on an empty queue; see `dequeueMany`. */
  private readonly waitedEmpty = new Set<string>();
  private marksFlush?: NodeJS.Immediate;
  /**
   * Task records written and not yet sent, merged by task id, with the
   * promise their writers were given: they ride on this storage's next step
   * made in the same turn (a quick run's "running" and "complete" become one
   * write), or go together at the end of the turn.
   */
  private readonly pendingRecords = new Map<string, { fields: Readonly<Record<string, string>>; ttlMs: number }>();
  /**
   * The turn in which records were written: the steps that carried them,
   * and the promise every writer of the turn was given, settled at the end
   * of the turn once those steps are. One promise and one timer a turn,
   * not one a task.
   */
  private recordsTurn?: { written: Deferred; steps: Array<Promise<unknown>>; end: NodeJS.Immediate };
  /** The storages of this instance's named queues, made on first use; see `forQueue`. */
  private readonly queueStorages = new Map<string, RedisStorage>();
  /** For a named queue's storage: the instance's storage, whose connection it shares. */
  private readonly home?: RedisStorage;

  constructor(
    readonly name: string,
    private readonly options: RedisStorageOptions = {},
    queueOf?: { home: RedisStorage; queue: string },
  ) {
    this.keys = new RedisKeys(name, queueOf?.queue);
    if (queueOf) {
      this.home = queueOf.home;
      this.connection = queueOf.home.connection.forKey(this.keys.queue);
      return;
    }
    // No offline queue: while Redis is away a command fails at once with a
    // clear error instead of waiting unseen, so a producer knows its enqueue
    // did not happen and a worker can back off.
    //
    // No per-command timeout either: node-redis arms an AbortSignal.timeout for
    // every command by default, which cost a quarter of a worker's CPU in the
    // benchmark (timers and the garbage they leave), and would cut off a
    // blocking dequeue longer than 5 s. A dead peer is found by TCP keepalive,
    // which node-redis turns on, and a closed socket fails commands at once.
    const events = { onError: (error: Error) => this.options.onError?.(error), onReady: () => (this.everReady = true) };
    if (options.sentinel && options.cluster) throw new StorageError('RedisStorage takes `sentinel` or `cluster`, not both');
    this.connection = options.sentinel
      ? new SentinelConnection(options.sentinel, events)
      : options.cluster
        ? new ClusterConnection(options.cluster, this.keys.queue, events)
        : DirectConnection.create(
          {
            url: options.url,
            disableOfflineQueue: true,
            commandOptions: { timeout: 0 },
            ...options.clientOptions,
            socket: { reconnectStrategy: (retries: number, cause: Error) => this.reconnectDelay(retries, cause), ...options.clientOptions?.socket },
          } as RedisClientOptions,
          this.url,
          events,
        );
  }

  /**
   * The node-redis client of a storage connected to one Redis by `url`.
   * A storage connected through Sentinel or to a Cluster has none of its own: use `connection.run(client => ...)`.
   */
  get client(): RedisClientType {
    if (this.connection instanceof DirectConnection) return this.connection.client;
    const through = this.connection instanceof ClusterConnection ? 'to a Cluster' : 'through Sentinel';
    throw new StorageError(`a RedisStorage connected ${through} has no single client: use storage.connection.run(client => ...)`);
  }

  /** Keep the process alive until the matching `commandEnded`: a command or connection is under way. */
  private commandStarted(): void {
    // Also when a close() cleared the handle while commands from before it were still going.
    if (this.inFlight++ === 0 || !this.keepAlive) (this.keepAlive ??= setInterval(() => {}, 2 ** 31 - 1)).ref();
  }

  private commandEnded(): void {
    if (--this.inFlight === 0) this.keepAlive?.unref();
  }

  /**
   * A first connection that fails is reported at once (a wrong URL should not
   * hang the caller); a connection that was up and dropped is retried for
   * ever, with backoff up to 2 s, since Redis restarts are routine.
   */
  private reconnectDelay(retries: number, cause: Error): number | Error {
    if (!this.everReady) return retries < 2 ? 100 : cause;
    return Math.min(50 * 2 ** retries, 2000) + Math.floor(Math.random() * 100);
  }

  /**
   * The storage of one named queue (or queue shard, `name#n`) of this
   * instance: its own queue, schedule, claims, leases, dead letters and
   * results under the hash tag `{name:queue}`, on this storage's connection
   * (on a cluster, routed to that tag's master).
   */
  forQueue(queue: string): RedisStorage {
    if (this.home) return this.home.forQueue(queue);
    let storage = this.queueStorages.get(queue);
    if (!storage) {
      const Kind = this.constructor as new (name: string, options: RedisStorageOptions, queueOf: { home: RedisStorage; queue: string }) => RedisStorage;
      storage = new Kind(this.name, this.options, { home: this, queue });
      this.queueStorages.set(queue, storage);
    }
    return storage;
  }

  connect(): Promise<void> {
    if (this.home) return this.home.connect();
    if (!this.connecting) {
      this.commandStarted();
      this.connecting = this.connection.connect().then(
        () => this.commandEnded(),
        (error: Error) => {
          this.commandEnded();
          this.connecting = undefined;
          throw new StorageError(`cannot connect to Redis at ${this.url}: ${error.message}`);
        },
      );
    }
    return this.connecting;
  }

  /**
   * A queue under eviction loses tasks without a trace: any maxmemory-policy
   * but noeviction lets Redis drop queued messages, claims or results when
   * memory runs short. A server that refuses CONFIG (managed services often
   * do) cannot be checked, and is not warned about.
   */
  async setupWarnings(): Promise<string[]> {
    let policy: string | undefined;
    try {
      policy = (await this.send((client) => client.configGet('maxmemory-policy')))['maxmemory-policy'];
    } catch {
      return [];
    }
    if (policy === undefined || policy === 'noeviction') return [];
    return [
      `Redis at ${this.url} has maxmemory-policy "${policy}": when memory runs short it evicts keys, and queued tasks, claims and results vanish without a trace. Set maxmemory-policy noeviction (CONFIG SET maxmemory-policy noeviction, and in redis.conf), so that a full Redis refuses new writes instead.`,
    ];
  }

  /** Close the connections; those of the instance also close its queues' storages, which share them. */
  async close(): Promise<void> {
    // Records still waiting go before the connection does.
    const waiting = this.recordsTurn?.written.promise;
    this.endRecordsTurn();
    await waiting?.catch(() => {});
    const queues = [...this.queueStorages.values()];
    await Promise.all(queues.map((storage) => storage.close()));
    const blocking = [...this.blockingClients.values()];
    this.blockingClients.clear();
    this.connecting = undefined;
    this.subscribing = undefined;
    const own = await Promise.allSettled(blocking);
    const connections = [...(this.home ? [] : [this.connection]), ...own.flatMap((c) => (c.status === 'fulfilled' ? [c.value] : []))];
    await Promise.all(connections.map((c) => c.close()));
    clearInterval(this.keepAlive);
    this.keepAlive = undefined;
  }

  protected async ready(): Promise<void> {
    if (!this.connection.isReady) {
      // A connection that was up and dropped fails fast; a first one is waited for.
      if (this.connection.failsFast) throw new StorageError(`Redis at ${this.url} is unreachable (reconnecting)`);
      await this.connect();
    }
  }

  /**
   * Run one storage operation so that whatever the client throws (a socket
   * closed mid-command, a refused connection) reaches the caller as a
   * StorageError naming this Redis.
   */
  protected async guard<T>(operation: () => Promise<T>): Promise<T> {
    this.commandStarted();
    try {
      return await operation();
    } catch (error) {
      throw this.storageError(error);
    } finally {
      this.commandEnded();
    }
  }

  /**
   * `guard` for the calls a worker makes per task or batch: the same errors,
   * with fewer async steps (and less garbage) when the client is ready.
   */
  protected send<T>(operation: (client: RedisClientType) => Promise<T>): Promise<T> {
    this.commandStarted();
    let sent: Promise<T>;
    try {
      const connection = this.connection;
      sent = connection.isReady ? connection.run(operation) : this.ready().then(() => connection.run(operation));
    } catch (error) {
      sent = Promise.reject(error);
    }
    return sent.then(
      (value) => {
        this.commandEnded();
        return value;
      },
      (error: unknown) => {
        this.commandEnded();
        throw this.storageError(error);
      },
    );
  }

  private storageError(error: unknown): Error {
    if (error instanceof HueyError) return error;
    return new StorageError(`Redis at ${this.url}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }

  private get url(): string {
    return this.connection?.description ?? this.options.url ?? 'redis://127.0.0.1:6379';
  }

  /** Run a blocking command on the worker's own connection (its sockets held by `guard` while it waits, like every command). */
  protected async runBlocking<T>(workerId: string, operation: (client: RedisClientType) => Promise<T>): Promise<T> {
    let connecting = this.blockingClients.get(workerId);
    if (!connecting) {
      connecting = (async () => {
        await this.ready();
        const connection = this.connection.duplicate();
        await connection.connect();
        return connection;
      })();
      this.blockingClients.set(workerId, connecting);
      connecting.catch(() => {
        if (this.blockingClients.get(workerId) === connecting) this.blockingClients.delete(workerId);
      });
    }
    return (await connecting).run(operation);
  }

  async enqueue(data: string): Promise<void> {
    this.sendRecords();
    await this.send((client) => client.lPush(this.keys.queue, data));
  }

  async enqueueMany(items: ReadonlyArray<{ data: string }>): Promise<void> {
    if (items.length === 0) return;
    this.sendRecords();
    await this.send((client) => client.lPush(this.keys.queue, items.map((item) => item.data)));
  }

  async dequeue(workerId: string, timeoutMs = 0): Promise<Claim | null> {
    const claimed = this.keys.claimed(workerId);
    const data =
      timeoutMs > 0
        ? await this.guard(() => this.runBlocking(workerId, (client) => client.blMove(this.keys.queue, claimed, 'RIGHT', 'LEFT', timeoutMs / 1000)))
        : await this.send((client) => client.lMove(this.keys.queue, claimed, 'RIGHT', 'LEFT'));
    return data === null ? null : { data: String(data), workerId };
  }

  async dequeueMany(workerId: string, count: number, timeoutMs = 0, peek?: ClaimPeek): Promise<Claim[]> {
    // A worker whose last wait found nothing waits again at once: the blocking move takes a
    // message that is there without waiting, so the claim script before it would only cost
    // an idle consumer two more commands a second.
    if (timeoutMs <= 0 || !this.waitedEmpty.has(workerId)) {
      const keys = [this.keys.queue, this.keys.claimed(workerId), this.keys.data];
      const args = peek ? [count, peek.byId, peek.byName] : [count];
      const items = (await this.send((client) => scripts.claimMany.run(client, keys, args))) as Array<string | null>;
      if (items.length > 0 || timeoutMs <= 0) return peek ? peekedClaims(items, workerId) : items.map((data) => ({ data: data!, workerId }));
    }
    // An empty queue: wait for one message on the worker's own connection.
    const claim = await this.dequeue(workerId, timeoutMs);
    if (claim) this.waitedEmpty.delete(workerId);
    else this.waitedEmpty.add(workerId);
    return claim ? [claim] : [];
  }

  /** Whether the queue is the priority sorted set, as the scripts that put claims back need to know. */
  protected get queueMode(): 'list' | 'zset' {
    return 'list';
  }

  /** The key the scripts that put claims back write to. */
  protected get queueKey(): string {
    return this.keys.queue;
  }

  markStarted(claim: Claim): void {
    const receipt = claim.receipt ?? claim.data;
    const marks = this.startedMarks.get(claim.workerId);
    if (marks) marks.push(receipt);
    else this.startedMarks.set(claim.workerId, [receipt]);
    this.marksFlush ??= setImmediate(() => this.flushMarks());
  }

  /** The worker's marks not yet sent, less the claim being settled, which needs none. */
  protected takeMarks(workerId: string, settled?: string): string[] {
    const marks = this.startedMarks.get(workerId);
    if (!marks) return [];
    this.startedMarks.delete(workerId);
    return settled === undefined ? marks : marks.filter((receipt) => receipt !== settled);
  }

  /**
   * Send the marks of runs still going after a turn of the event loop. Best
   * effort: a mark lost to a Redis outage only makes a run count as
   * unstarted, so it is put back rather than failed if its consumer dies.
   */
  private flushMarks(): void {
    this.marksFlush = undefined;
    if (!this.connection.isReady) return void this.startedMarks.clear();
    for (const workerId of [...this.startedMarks.keys()]) {
      const marks = this.takeMarks(workerId);
      this.connection.run((client) => client.sAdd(this.keys.started(workerId), marks)).catch(() => {});
    }
  }

  async ack(claim: Claim): Promise<void> {
    const receipt = claim.receipt ?? claim.data;
    const keys = [this.keys.claimed(claim.workerId), this.keys.started(claim.workerId), this.keys.stalls];
    const records = this.takeRecords();
    const args = [receipt, records, ...this.takeMarks(claim.workerId, receipt)];
    await this.carried(records, this.send((client) => scripts.ack.run(client, keys, args)));
  }

  async retryAndAck(claim: Claim, data: string, eta: number | null): Promise<void> {
    const receipt = claim.receipt ?? claim.data;
    const keys = [this.keys.claimed(claim.workerId), this.keys.started(claim.workerId), this.keys.stalls, this.keys.queue, this.keys.schedule];
    const records = this.takeRecords();
    const args = [receipt, data, eta === null ? '' : eta, records, ...this.takeMarks(claim.workerId, receipt)];
    await this.carried(records, this.send((client) => scripts.retryAck.run(client, keys, args)));
  }

  async release(claims: readonly Claim[]): Promise<number> {
    if (claims.length === 0) return 0;
    const workerId = claims[0]!.workerId;
    const keys = [this.keys.claimed(workerId), this.queueKey, this.keys.started(workerId)];
    const args = [this.queueMode, ...claims.map((claim) => claim.receipt ?? claim.data)];
    return Number(await this.send((client) => scripts.release.run(client, keys, args)));
  }

  async deadLetter(claim: Claim, reason: string): Promise<void> {
    return this.send(async (client) => {
      const entry = deadLetterEntry({ data: claim.data, reason, at: Date.now() });
      // One transaction: the message is never in neither list nor in both.
      await client
        .multi()
        .lRem(this.keys.claimed(claim.workerId), -1, claim.receipt ?? claim.data)
        .sRem(this.keys.started(claim.workerId), claim.receipt ?? claim.data)
        .lPush(this.keys.dead, entry)
        .exec();
    });
  }

  async deadLetters(limit = -1): Promise<DeadLetter[]> {
    return this.send(async (client) => {
      const items = await client.lRange(this.keys.dead, 0, limit < 0 ? -1 : limit - 1);
      return items.map((item) => JSON.parse(item) as DeadLetter);
    });
  }

  async deadLetterCount(): Promise<number> {
    return this.send(async (client) => client.lLen(this.keys.dead));
  }

  async deleteDeadLetter(letter: DeadLetter): Promise<boolean> {
    return this.send(async (client) => (await client.lRem(this.keys.dead, 1, deadLetterEntry(letter))) > 0);
  }

  async requeue(workerId: string): Promise<number> {
    return this.send(async (client) => {
      this.startedMarks.delete(workerId);
      return Number(await scripts.requeue.run(client, [this.keys.claimed(workerId), this.keys.queue, this.keys.started(workerId)]));
    });
  }

  async renewLeases(ownerIds: readonly string[], leaseMs: number): Promise<void> {
    return this.send(async (client) => {
      if (ownerIds.length === 0) return;
      await scripts.renewLeases.run(client, [this.keys.leases], [leaseMs, ...ownerIds]);
    });
  }

  async dropLeases(ownerIds: readonly string[]): Promise<void> {
    return this.send(async (client) => {
      if (ownerIds.length === 0) return;
      await client.hDel(this.keys.leases, [...ownerIds]);
    });
  }

  async expiredLeases(): Promise<string[]> {
    return this.send(async (client) => {
      return (await scripts.expiredLeases.run(client, [this.keys.leases])) as string[];
    });
  }

  async adoptClaims(ownerId: string, adopterId: string, maxStalls: number, concurrency: number): Promise<Adoption | null> {
    return this.send(async (client) => {
      const k = this.keys;
      const keys = [k.claimed(ownerId), k.claimed(adopterId), k.leases, k.started(ownerId), k.started(adopterId), this.queueKey, k.stalls];
      const reply = (await scripts.adoptClaims.run(client, keys, [ownerId, maxStalls, this.queueMode, concurrency])) as number | Array<number | string>;
      if (!Array.isArray(reply)) return null;
      const [startedCount, requeued, ...stalled] = reply;
      return { started: Number(startedCount), requeued: Number(requeued), stalled: stalled.map((receipt) => this.claimOf(String(receipt), adopterId)) };
    });
  }

  /** The claim a receipt in a claimed list stands for. */
  protected claimOf(receipt: string, workerId: string): Claim {
    return { data: receipt, workerId };
  }

  async claimed(workerId: string): Promise<Claim[]> {
    return this.send(async (client) => {
      const items = await client.lRange(this.keys.claimed(workerId), 0, -1);
      return items.map((data) => ({ data, workerId }));
    });
  }

  async queueSize(): Promise<number> {
    return this.send(async (client) => {
      return client.lLen(this.keys.queue);
    });
  }

  async queueSizeByPriority(): Promise<Array<[number, number]> | null> {
    return null; // one list, first in, first out: priorities are not kept apart
  }

  async enqueuedItems(limit = -1): Promise<string[]> {
    return this.send(async (client) => {
      // The right end runs next: read from there.
      const items = await client.lRange(this.keys.queue, limit < 0 ? 0 : -limit, -1);
      return items.reverse();
    });
  }

  async flushQueue(): Promise<void> {
    return this.send(async (client) => {
      await client.del(this.keys.queue);
    });
  }

  async addToSchedule(data: string, timestamp: number): Promise<void> {
    this.sendRecords();
    await this.send((client) => client.zAdd(this.keys.schedule, { score: timestamp, value: data }));
  }

  async removeScheduled(data: string): Promise<boolean> {
    return (await this.send((client) => client.zRem(this.keys.schedule, data))) > 0;
  }

  async readSchedule(timestamp: number): Promise<string[]> {
    return this.send(async (client) => {
      return (await scripts.readSchedule.run(client, [this.keys.schedule], [timestamp])) as string[];
    });
  }

  async enqueueDue(timestamp: number): Promise<DueMove> {
    return this.send(async (client) => {
      let total = 0;
      for (;;) {
        const [moved, next] = (await scripts.enqueueDue.run(client, [this.keys.schedule, this.keys.queue], [timestamp, ENQUEUE_DUE_BATCH])) as [number, string?];
        total += Number(moved);
        if (Number(moved) < ENQUEUE_DUE_BATCH) return { moved: total, next: next === undefined ? null : Number(next) };
      }
    });
  }

  async scheduleSize(): Promise<number> {
    return this.send(async (client) => {
      return client.zCard(this.keys.schedule);
    });
  }

  async scheduledItems(limit = -1): Promise<string[]> {
    return this.send(async (client) => {
      return client.zRange(this.keys.schedule, 0, limit < 0 ? -1 : limit - 1);
    });
  }

  async flushSchedule(): Promise<void> {
    return this.send(async (client) => {
      await client.del(this.keys.schedule);
    });
  }

  // Key/value data: the data hash, and for results with a time to live a key
  // of their own (which Redis expires) listed in the expiry index. Every
  // method looks in both; writes keep a key in one place only.

  async putData(key: string, value: string): Promise<void> {
    return this.send(async (client) => {
      await client.multi().hSet(this.keys.data, key, value).del(this.keys.result(key)).zRem(this.keys.resultExpiry, key).exec();
    });
  }

  async putResult(id: string, value: string, ttlMs = 0, ack?: Claim): Promise<void> {
    // Without an ack, the claim keys are not touched: any key of this instance fills their places.
    const claimed = ack ? this.keys.claimed(ack.workerId) : this.keys.queue;
    const started = ack ? this.keys.started(ack.workerId) : this.keys.queue;
    const keys = [this.keys.data, this.keys.result(id), this.keys.resultsChannel, claimed, started, this.keys.stalls, this.keys.resultExpiry];
    const receipt = ack ? (ack.receipt ?? ack.data) : '';
    const records = this.takeRecords();
    const args = [id, value, Math.ceil(ttlMs), receipt, records, ...(ack ? this.takeMarks(ack.workerId, receipt) : [])];
    await this.carried(records, this.send((client) => scripts.putResult.run(client, keys, args)));
  }

  async watchResult(id: string, listener: () => void): Promise<() => void> {
    return this.guard(async () => {
      const listeners = this.resultWatchers.get(id) ?? new Set();
      listeners.add(listener);
      this.resultWatchers.set(id, listeners);
      await this.subscribeToResults();
      return () => {
        listeners.delete(listener);
        if (listeners.size === 0) this.resultWatchers.delete(id);
      };
    });
  }

  /** One subscriber connection per storage serves every waiting `Result.get()`. */
  private subscribeToResults(): Promise<void> {
    this.subscribing ??= (async () => {
      await this.ready();
      // A waiting get() keeps the process alive with its own recheck timer; an idle subscription must not.
      await this.connection.subscribe(this.keys.resultsChannel, (id: string) => {
        for (const listener of this.resultWatchers.get(id) ?? []) listener();
      });
    })().catch((error: unknown) => {
      this.subscribing = undefined;
      throw error;
    });
    return this.subscribing;
  }

  async peekData(key: string): Promise<string | null> {
    return this.send(async (client) => {
      return ((await scripts.peekData.run(client, [this.keys.data, this.keys.result(key)], [key])) as string | null) ?? null;
    });
  }

  async peekDataMany(keys: readonly string[]): Promise<Array<string | null>> {
    if (keys.length === 0) return [];
    // Values written with putData live in the hash; only results with a time to live do not,
    // and this is the worker's read of revocation flags for every batch: one HMGET.
    const values = await this.send((client) => client.hmGet(this.keys.data, [...keys]));
    return values.map((value) => value ?? null);
  }

  async popData(key: string): Promise<string | null> {
    return this.send(async (client) => {
      const keys = [this.keys.data, this.keys.result(key), this.keys.resultExpiry];
      return ((await scripts.popData.run(client, keys, [key])) as string | null) ?? null;
    });
  }

  async putIfEmpty(key: string, value: string): Promise<boolean> {
    return this.send(async (client) => {
      return Number(await scripts.putIfEmpty.run(client, [this.keys.data, this.keys.result(key)], [key, value])) === 1;
    });
  }

  async deleteData(key: string): Promise<boolean> {
    return this.send(async (client) => {
      const [own, hashed] = (await client.multi().del(this.keys.result(key)).hDel(this.keys.data, key).zRem(this.keys.resultExpiry, key).exec()) as unknown as number[];
      return Number(own) + Number(hashed) > 0;
    });
  }

  async deleteIfEqual(key: string, value: string): Promise<boolean> {
    return this.send(async (client) => {
      const keys = [this.keys.data, this.keys.result(key), this.keys.resultExpiry];
      return Number(await scripts.deleteIfEqual.run(client, keys, [key, value])) > 0;
    });
  }

  async hasDataForKey(key: string): Promise<boolean> {
    return this.send(async (client) => {
      return Number(await scripts.hasData.run(client, [this.keys.data, this.keys.result(key)], [key])) === 1;
    });
  }

  /** Now on Redis's clock, in ms: the clock its keys expire by and the expiry index is scored on. */
  private async serverTime(client: RedisClientType): Promise<number> {
    const [seconds, micros] = (await client.sendCommand(['TIME'])) as unknown as [string, string];
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  }

  async resultStoreSize(): Promise<number> {
    return this.send(async (client) => {
      const now = await this.serverTime(client);
      const [hashed, own] = (await client.multi().hLen(this.keys.data).zCount(this.keys.resultExpiry, now, '+inf').exec()) as unknown as number[];
      return Number(hashed) + Number(own);
    });
  }

  async resultItems(): Promise<Record<string, string>> {
    return this.send(async (client) => {
      const now = await this.serverTime(client);
      const [hashed, ids] = (await client.multi().hGetAll(this.keys.data).zRangeByScore(this.keys.resultExpiry, now, '+inf').exec()) as unknown as [Record<string, string>, string[]];
      const items: Record<string, string> = { ...hashed };
      if (ids.length === 0) return items;
      // One that lapsed since the index was read is gone (null) and left out.
      const values = await client.mGet(ids.map((id) => this.keys.result(id)));
      ids.forEach((id, i) => {
        if (values[i] != null) items[id] = values[i]!;
      });
      return items;
    });
  }

  async flushResults(): Promise<void> {
    return this.send(async (client) => {
      const keys = [this.keys.data, this.keys.resultExpiry];
      for await (const batch of client.scanIterator({ MATCH: this.keys.resultPattern, COUNT: 100 })) keys.push(...batch);
      await client.del(keys);
    });
  }

  async dataKeys(prefix: string, limit = -1): Promise<string[]> {
    return this.send(async (client) => {
      const found = new Set<string>();
      const full = () => limit >= 0 && found.size >= limit;
      // HSCAN NOVALUES needs Redis 7.4; the match keeps the values read to the few wanted.
      for await (const entries of client.hScanIterator(this.keys.data, { MATCH: startsWith(prefix), COUNT: 500 })) {
        for (const entry of entries) found.add(String(entry.field));
        if (full()) return [...found].slice(0, limit);
      }
      const now = await this.serverTime(client);
      for await (const members of client.zScanIterator(this.keys.resultExpiry, { MATCH: startsWith(prefix), COUNT: 500 })) {
        for (const member of members) if (Number(member.score) >= now) found.add(String(member.value));
        if (full()) return [...found].slice(0, limit);
      }
      return [...found];
    });
  }

  // Counters: one hash of their own, so that data of the same name is never touched.

  async increment(key: string, by = 1): Promise<number> {
    return this.send(async (client) => {
      return client.hIncrBy(this.keys.counters, key, by);
    });
  }

  async putIfGreater(key: string, value: number): Promise<boolean> {
    return this.send(async (client) => {
      return Number(await scripts.putIfGreater.run(client, [this.keys.counters], [key, value])) === 1;
    });
  }

  async counters(prefix: string): Promise<Record<string, number>> {
    return this.send(async (client) => {
      const counters: Record<string, number> = {};
      for await (const entries of client.hScanIterator(this.keys.counters, { MATCH: startsWith(prefix), COUNT: 500 })) {
        for (const entry of entries) counters[String(entry.field)] = Number(entry.value);
      }
      return counters;
    });
  }

  async deleteCounter(key: string): Promise<boolean> {
    return this.send(async (client) => {
      return (await client.hDel(this.keys.counters, key)) > 0;
    });
  }

  async putStatus(id: string, value: string): Promise<void> {
    await this.send((client) => client.hSet(this.keys.workers, id, value));
  }

  async statuses(): Promise<Record<string, string>> {
    return this.send(async (client) => ({ ...(await client.hGetAll(this.keys.workers)) }));
  }

  async dropStatus(id: string): Promise<void> {
    await this.send((client) => client.hDel(this.keys.workers, id));
  }

  async pushEvents(values: readonly string[], keep: number): Promise<void> {
    if (values.length === 0) return;
    await this.send((client) => client.multi().lPush(this.keys.events, [...values]).lTrim(this.keys.events, 0, keep - 1).exec());
  }

  async events(limit = -1): Promise<string[]> {
    return this.send(async (client) => client.lRange(this.keys.events, 0, limit < 0 ? -1 : limit - 1));
  }

  /**
   * Merged into the records waiting to be sent, which go with this storage's
   * next step in the same turn (an ack, a result, an enqueue) or, when none
   * is made, together at the end of the turn. The fields are kept as given
   * until another write to the same record merges into a copy.
   */
  writeRecord(id: string, fields: Readonly<Record<string, string>>, ttlMs: number): Promise<void> {
    const pending = this.pendingRecords.get(id);
    if (pending) {
      pending.fields = { ...pending.fields, ...fields };
      pending.ttlMs = ttlMs;
    } else {
      this.pendingRecords.set(id, { fields, ttlMs });
    }
    this.recordsTurn ??= { written: deferred(), steps: [], end: setImmediate(() => this.endRecordsTurn()) };
    return this.recordsTurn.written.promise;
  }

  /** Send the records no step carried, and settle the turn's writers once every step that carried some has settled. */
  private endRecordsTurn(): void {
    this.sendRecords();
    const turn = this.recordsTurn;
    if (!turn) return;
    this.recordsTurn = undefined;
    clearImmediate(turn.end);
    Promise.all(turn.steps).then(() => turn.written.resolve(), turn.written.reject);
  }

  /**
   * The records waiting to be sent, as the argument of a script that carries
   * them (see records.lua); none wait after this. More than one step should
   * carry go in steps of their own, and this step carries none. Give the
   * step to `carried` once it is sent.
   */
  private takeRecords(): string {
    if (this.pendingRecords.size === 0) return '';
    if (this.pendingRecords.size > RECORDS_PER_STEP) {
      this.sendRecords();
      return '';
    }
    const block = this.recordBlock(this.pendingRecords);
    this.pendingRecords.clear();
    return block;
  }

  /** The argument of records.lua for these records: one JSON array of strings. */
  private recordBlock(records: Iterable<[string, { fields: Readonly<Record<string, string>>; ttlMs: number }]>): string {
    const block: string[] = [this.keys.record(''), this.keys.failed];
    for (const [id, { fields, ttlMs }] of records) {
      const { state = '', ended = '' } = fields;
      const at = block.length + 4;
      block.push(id, String(Math.max(1, Math.ceil(ttlMs))), state, ended, '');
      let count = 0;
      for (const field in fields) {
        if (field === 'state' || (field === 'ended' && state !== '')) continue;
        block.push(field, fields[field]!);
        count++;
      }
      block[at] = String(count);
    }
    // Redis's JSON decoder refuses the escape of a lone surrogate; Huey sends none in fields, and an id gets the same care.
    const json = JSON.stringify(block);
    return json.includes('\\ud') ? JSON.stringify(block.map(storableText)) : json;
  }

  /** A step that carried records: their writers wait for it (see `endRecordsTurn`). */
  private carried<T>(block: string, step: Promise<T>): Promise<T> {
    if (block !== '') this.recordsTurn?.steps.push(step);
    return step;
  }

  /**
   * Send the records waiting, at once, in steps of their own: before a step
   * that cannot carry them, so that a task's "enqueued" is written before
   * any worker can take it, or at the end of a turn with no step.
   */
  protected sendRecords(): void {
    if (this.pendingRecords.size === 0) return;
    const records = [...this.pendingRecords];
    this.pendingRecords.clear();
    for (let i = 0; i < records.length; i += RECORDS_PER_STEP) {
      const block = this.recordBlock(records.slice(i, i + RECORDS_PER_STEP));
      void this.carried(block, this.send((client) => scripts.writeRecords.run(client, [this.keys.failed], [block]))).catch(() => {});
    }
  }

  async readRecord(id: string): Promise<Record<string, string> | null> {
    // A read after a write sees it.
    this.sendRecords();
    const fields = await this.send((client) => client.hGetAll(this.keys.record(id)));
    return Object.keys(fields).length > 0 ? { ...fields } : null;
  }

  async failedRecords(limit = 100): Promise<string[]> {
    this.sendRecords();
    return this.send(async (client) => {
      const now = await this.serverTime(client);
      // Entries are scored by when their record lapses: the lapsed go first.
      const [, ids] = (await client.multi().zRemRangeByScore(this.keys.failed, '-inf', now).zRange(this.keys.failed, 0, limit - 1, { REV: true }).exec()) as unknown as [number, string[]];
      return ids;
    });
  }

  async failedCount(): Promise<number> {
    this.sendRecords();
    return this.send(async (client) => client.zCount(this.keys.failed, await this.serverTime(client), '+inf'));
  }

  async flushAll(): Promise<void> {
    this.sendRecords();
    return this.send(async (client) => {
      const { queue, schedule, data, dead, leases, workers, events, priorityQueue, prioritySequence, wake } = this.keys;
      const keys = [queue, schedule, data, dead, leases, workers, events, priorityQueue, prioritySequence, wake];
      keys.push(this.keys.stalls, this.keys.resultExpiry, this.keys.counters, this.keys.failed);
      for (const pattern of [this.keys.claimedPattern, this.keys.startedPattern, this.keys.resultPattern, this.keys.recordPattern]) {
        for await (const batch of client.scanIterator({ MATCH: pattern, COUNT: 100 })) keys.push(...batch);
      }
      await client.del(keys);
    });
  }
}
