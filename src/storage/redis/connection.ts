import {
  createClient,
  createCluster,
  createSentinel,
  type RedisClientOptions,
  type RedisClientType,
  type RedisClusterOptions,
  type RedisClusterType,
  type RedisSentinelOptions,
  type RedisSentinelType,
} from '@redis/client';

/**
 * How RedisStorage reaches its Redis: one client of its own (`DirectConnection`),
 * whichever node Redis Sentinel says is the master (`SentinelConnection`), or
 * the master of the instance's slot in a Redis Cluster (`ClusterConnection`).
 * Every storage operation runs as `run(client => ...)` with a plain node-redis
 * client, so the commands, scripts, MULTI and scan iterators are the same on
 * both; finding the master and following a failover is node-redis's own work.
 */
export interface RedisConnection {
  readonly isReady: boolean;
  readonly isOpen: boolean;
  /** Whether a connection that was up has dropped, so that a command should fail at once rather than wait. */
  readonly failsFast: boolean;
  /** Where it connects to, for error messages. */
  readonly description: string;
  connect(): Promise<void>;
  close(): Promise<void>;
  /** Run commands on the master's client. Under Sentinel they are retried on the new master when it changes. */
  run<T>(operation: (client: RedisClientType) => Promise<T>): Promise<T>;
  /** Another connection to the same Redis, for blocking commands that would hold this one. */
  duplicate(): RedisConnection;
  /**
   * This connection, for the keys sharing `routingKey`'s hash tag (a named
   * queue's): on a cluster, a view routed to that tag's master over the same
   * cluster client; otherwise the connection itself. Its owner opens and closes it.
   */
  forKey(routingKey: string): RedisConnection;
  /** Listen on a channel, on a connection of its own that does not keep the process alive. */
  subscribe(channel: string, listener: (message: string) => void): Promise<void>;
}

export interface ConnectionEvents {
  onError?: (error: Error) => void;
  onReady?: () => void;
}

const asError = (error: unknown): Error => (error instanceof Error ? error : new Error(String(error)));

/** One node-redis client, its sockets unref'd, reconnecting by the storage's strategy. */
export class DirectConnection implements RedisConnection {
  private subscriber?: RedisClientType;
  private everReady = false;

  constructor(
    readonly client: RedisClientType,
    readonly description: string,
    private readonly events: ConnectionEvents,
  ) {
    client.on('error', (error: Error) => events.onError?.(error));
    client.on('ready', () => {
      this.everReady = true;
      events.onReady?.();
    });
    // node-redis keeps this across reconnects: every socket it opens is unref'd.
    client.unref();
  }

  static create(options: RedisClientOptions, description: string, events: ConnectionEvents): DirectConnection {
    return new DirectConnection(createClient(options) as RedisClientType, description, events);
  }

  get isReady(): boolean {
    return this.client.isReady;
  }

  get isOpen(): boolean {
    return this.client.isOpen;
  }

  get failsFast(): boolean {
    return this.everReady && this.client.isOpen && !this.client.isReady;
  }

  async connect(): Promise<void> {
    await this.client.connect();
  }

  async close(): Promise<void> {
    const clients = [this.client, ...(this.subscriber ? [this.subscriber] : [])];
    this.subscriber = undefined;
    await Promise.all(clients.map((c) => (c.isOpen ? c.close() : undefined)));
  }

  run<T>(operation: (client: RedisClientType) => Promise<T>): Promise<T> {
    return operation(this.client);
  }

  duplicate(): DirectConnection {
    return new DirectConnection(this.client.duplicate() as RedisClientType, this.description, { onError: this.events.onError });
  }

  forKey(): DirectConnection {
    return this;
  }

  async subscribe(channel: string, listener: (message: string) => void): Promise<void> {
    if (!this.subscriber) {
      const subscriber = this.client.duplicate() as RedisClientType;
      subscriber.on('error', (error: Error) => this.events.onError?.(error));
      subscriber.unref();
      this.subscriber = subscriber;
      await subscriber.connect();
    }
    await this.subscriber.subscribe(channel, listener);
  }
}

/** Options for reaching Redis through Sentinel: node-redis's `RedisSentinelOptions`. */
export type RedisSentinelConnectionOptions = Omit<RedisSentinelOptions, 'RESP' | 'modules' | 'functions' | 'scripts' | 'clientSideCache' | 'keyPrefix' | 'masterPoolSize' | 'reserveClient'>;

/**
 * The master that Sentinel names, through node-redis's sentinel client: it
 * asks the sentinels for the master, follows `+switch-master`, and retries a
 * command on the new master when the old one refuses writes (READONLY) or
 * its connection drops.
 */
export class SentinelConnection implements RedisConnection {
  readonly description: string;
  private readonly sentinel: RedisSentinelType;

  constructor(
    private readonly options: RedisSentinelConnectionOptions,
    private readonly events: ConnectionEvents,
  ) {
    const nodes = options.sentinelRootNodes.map((node) => `${node.host}:${node.port}`).join(',');
    this.description = `sentinel master "${options.name}" via ${nodes}`;
    this.sentinel = createSentinel({
      ...options,
      // One master connection, held by this client rather than leased per command: leases
      // would queue a command behind others while commands overlap, and it is what `run`
      // uses. Each duplicate has its own.
      masterPoolSize: 1,
      reserveClient: true,
      nodeClientOptions: {
        // As for a direct client: no offline queue (the sentinel client checks readiness and
        // retries on the new master itself) and no per-command timeout, which would cut off
        // blocking waits. Sentinel-level `commandOptions` do not reach the node clients.
        disableOfflineQueue: true,
        commandOptions: { timeout: 0 },
        ...options.nodeClientOptions,
      } as RedisSentinelOptions['nodeClientOptions'],
    }) as RedisSentinelType;
    this.sentinel.on('error', (error: unknown) => events.onError?.(asError(error)));
    this.sentinel.on('ready', () => events.onReady?.());
  }

  get isReady(): boolean {
    return this.sentinel.isReady;
  }

  get isOpen(): boolean {
    return this.sentinel.isOpen;
  }

  /** Never: while Sentinel fails over, commands wait for the new master (up to `maxCommandRediscovers` tries). */
  get failsFast(): boolean {
    return false;
  }

  async connect(): Promise<void> {
    await this.sentinel.connect();
  }

  async close(): Promise<void> {
    if (this.sentinel.isOpen) await this.sentinel.close();
  }

  run<T>(operation: (client: RedisClientType) => Promise<T>): Promise<T> {
    if (!this.sentinel.isOpen) return Promise.reject(new Error('The sentinel client is closed (not connected yet, or closed)'));
    return this.sentinel._execute(false, (client) => operation(client as unknown as RedisClientType));
  }

  /** A sentinel client of its own (a connection to a sentinel and one to the master). */
  duplicate(): SentinelConnection {
    return new SentinelConnection(this.options, { onError: this.events.onError });
  }

  forKey(): SentinelConnection {
    return this;
  }

  async subscribe(channel: string, listener: (message: string) => void): Promise<void> {
    // The sentinel's own pub/sub connection, which moves to the new node on a failover.
    await this.sentinel.subscribe(channel, listener);
  }
}

/**
 * Options for reaching a Redis Cluster: node-redis's `RedisClusterOptions`,
 * e.g. `{ rootNodes: [{ url: 'redis://10.0.0.1:7000' }, ...] }`, with `defaults`
 * (password, TLS...) for every node connection.
 */
export type RedisClusterConnectionOptions = Omit<
  RedisClusterOptions,
  'RESP' | 'modules' | 'functions' | 'scripts' | 'clientSideCache' | 'keyPrefix' | 'useReplicas' | 'commandOptions'
>;

type ClusterParser = Parameters<RedisClusterType['_execute']>[0];

/**
 * The master of one slot of a Redis Cluster, through node-redis's cluster
 * client. Every key of a Huey instance carries the hash tag `{name}`, so all
 * of them live in one slot, and every operation runs on that slot's master:
 * `run` hands node-redis's own node client to the operation through the
 * cluster's `_execute`, routed by a key of the instance, so MOVED and ASK are
 * followed by node-redis, and a failover is found by its topology refresh
 * (node clients that keep failing to reconnect trigger one). Keyless commands
 * (TIME, CONFIG GET, SCAN) therefore reach the node that holds the instance.
 */
export class ClusterConnection implements RedisConnection {
  readonly description: string;
  private readonly cluster: RedisClusterType;
  private readonly parser: ClusterParser;
  private readonly unrefd: WeakSet<object>;

  /**
   * `routingKey`: any key of the instance; its slot is the one every operation goes to.
   * `shared`: the cluster client of the connection this one is a view of (`forKey`).
   */
  constructor(
    private readonly options: RedisClusterConnectionOptions,
    private readonly routingKey: string,
    private readonly events: ConnectionEvents,
    shared?: { cluster: RedisClusterType; description: string; unrefd: WeakSet<object> },
  ) {
    // `_execute` reads only the routing key of its parser.
    this.parser = { firstKey: routingKey } as unknown as ClusterParser;
    if (shared) {
      this.cluster = shared.cluster;
      this.description = shared.description;
      this.unrefd = shared.unrefd;
      return;
    }
    this.unrefd = new WeakSet<object>();
    const nodes = options.rootNodes.map((node) => node.url ?? `${(node.socket as { host?: string })?.host ?? '127.0.0.1'}:${(node.socket as { port?: number })?.port ?? 6379}`);
    this.description = `cluster via ${nodes.join(',')}`;
    this.cluster = createCluster({
      // Only the slot's master is used: connect to the nodes as they are needed, not to all.
      minimizeConnections: true,
      // After a master dies, look for the promoted replica soon (node-redis's default waits 5 s).
      topologyRefreshOnReconnectionAttemptStrategy: 500,
      ...options,
      useReplicas: false,
      defaults: {
        // As for a direct client: no offline queue (a command to a master that is away fails at
        // once) and no per-command timeout, which would cut off blocking waits.
        disableOfflineQueue: true,
        commandOptions: { timeout: 0 },
        ...options.defaults,
      } as RedisClusterOptions['defaults'],
    }) as unknown as RedisClusterType;
    this.cluster.on('error', (error: unknown) => events.onError?.(asError(error)));
    this.cluster.on('node-error', (error: unknown) => events.onError?.(asError(error)));
    this.cluster.on('connect', () => events.onReady?.());
  }

  get isReady(): boolean {
    return this.cluster.isReady;
  }

  get isOpen(): boolean {
    return this.cluster.isOpen;
  }

  /** Never at this level: a command to a master that is away fails at once by itself (no offline queue). */
  get failsFast(): boolean {
    return false;
  }

  async connect(): Promise<void> {
    await this.cluster.connect();
  }

  async close(): Promise<void> {
    if (!this.cluster.isOpen) return;
    // close() waits for replies from every node client; one of a dead node may never come.
    let timer: NodeJS.Timeout | undefined;
    const closed = this.cluster.close().then(() => true, () => false);
    const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 2000)));
    const clean = await Promise.race([closed, timedOut]);
    clearTimeout(timer);
    if (!clean) this.cluster.destroy();
  }

  run<T>(operation: (client: RedisClientType) => Promise<T>): Promise<T> {
    if (!this.cluster.isOpen) return Promise.reject(new Error('The cluster client is closed (not connected yet, or closed)'));
    return this.cluster._execute(this.parser, false, undefined, (client) => {
      // Like a direct client's, the node clients' sockets do not keep the process alive.
      if (!this.unrefd.has(client)) {
        this.unrefd.add(client);
        client.unref();
      }
      return operation(client as unknown as RedisClientType);
    });
  }

  /** A cluster client of its own (topology, then a connection to the slot's master). */
  duplicate(): ClusterConnection {
    return new ClusterConnection(this.options, this.routingKey, { onError: this.events.onError });
  }

  /** The same cluster client, routed to the master of `routingKey`'s slot. */
  forKey(routingKey: string): ClusterConnection {
    return new ClusterConnection(this.options, routingKey, this.events, { cluster: this.cluster, description: this.description, unrefd: this.unrefd });
  }

  /**
   * Plain SUBSCRIBE on the cluster's pub/sub connection: the put-result script
   * PUBLISHes, which a cluster broadcasts to every node, so any node serves.
   * node-redis moves the subscription when that node leaves the topology.
   */
  async subscribe(channel: string, listener: (message: string) => void): Promise<void> {
    await this.cluster.subscribe(channel, listener);
    const client = this.cluster.pubSubNode?.client;
    if (client && !this.unrefd.has(client)) {
      this.unrefd.add(client);
      client.unref();
    }
  }
}
