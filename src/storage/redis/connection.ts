import { createClient, createSentinel, type RedisClientOptions, type RedisClientType, type RedisSentinelOptions, type RedisSentinelType } from 'redis';

/**
 * How RedisStorage reaches its Redis: one client of its own (`DirectConnection`)
 * or whichever node Redis Sentinel says is the master (`SentinelConnection`).
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

  async subscribe(channel: string, listener: (message: string) => void): Promise<void> {
    // The sentinel's own pub/sub connection, which moves to the new node on a failover.
    await this.sentinel.subscribe(channel, listener);
  }
}
