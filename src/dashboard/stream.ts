import type { ServerResponse } from 'node:http';

/** One snapshot, serialized once: the JSON and the event that carries it. */
export interface Frame {
  json: string;
  event: Buffer;
  at: number;
}

interface Client {
  /** False from a write the socket could not take at once until its 'drain'. */
  ready: boolean;
  /** The last frame sent, so that no client gets one twice. */
  last?: Frame;
}

/**
 * The server-sent event stream of snapshots, shared by every open page. One
 * snapshot is built and serialized per interval, however many listen, and
 * none while nobody does. A client whose socket has not drained the last
 * snapshot skips this one and gets the next, so a slow page holds at most
 * one snapshot, and that is the same Buffer for every client. A new client
 * gets the latest snapshot, and only it does.
 */
export class SnapshotStream {
  private readonly clients = new Map<ServerResponse, Client>();
  private timer: NodeJS.Timeout | undefined;
  private building: Promise<Frame> | undefined;
  private latest: Frame | undefined;

  /** `build` gives the snapshot's JSON and never throws (a failure is a JSON error). */
  constructor(
    private readonly build: () => Promise<string>,
    private readonly intervalMs: number,
    private readonly maxClients: number,
  ) {}

  /** How many clients listen now. */
  get size(): number {
    return this.clients.size;
  }

  /** Open the stream on `response` and send it the latest snapshot; false, with nothing sent, when full. */
  add(response: ServerResponse): boolean {
    if (this.clients.size >= this.maxClients) return false;
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    const client: Client = { ready: true };
    this.clients.set(response, client);
    response.on('close', () => this.remove(response));
    this.timer ??= setInterval(() => this.tick(), this.intervalMs);
    void this.current().then((frame) => this.send(response, client, frame));
    return true;
  }

  /** The latest snapshot, built now unless the last one is younger than an interval. */
  current(): Promise<Frame> {
    if (this.latest && Date.now() - this.latest.at < this.intervalMs) return Promise.resolve(this.latest);
    return this.next();
  }

  /** Build a fresh snapshot and send it to every client ready for it (each beat, and after an action); nothing without clients. */
  async refresh(): Promise<void> {
    if (this.clients.size === 0) return;
    // A build under way began before whatever this refresh is for (an action): take the one after it.
    if (this.building) await this.building;
    const frame = await this.next();
    for (const [response, client] of this.clients) this.send(response, client, frame);
  }

  close(): void {
    this.stop();
    for (const response of this.clients.keys()) response.end();
  }

  /** One build at a time: whoever asks during a build shares it. */
  private next(): Promise<Frame> {
    this.building ??= this.build()
      .then((json) => (this.latest = { json, event: Buffer.from(`data: ${json}\n\n`), at: Date.now() }))
      .finally(() => (this.building = undefined));
    return this.building;
  }

  private tick(): void {
    if (this.clients.size === 0) return this.stop();
    // A build slower than the interval: skip this beat rather than pile builds up.
    if (!this.building) void this.refresh();
  }

  private send(response: ServerResponse, client: Client, frame: Frame): void {
    if (!client.ready || client.last === frame || response.destroyed || response.writableEnded) return;
    client.last = frame;
    client.ready = response.write(frame.event);
    if (!client.ready) response.once('drain', () => (client.ready = true));
  }

  private remove(response: ServerResponse): void {
    this.clients.delete(response);
    if (this.clients.size === 0) this.stop();
  }

  /** Nobody listens: no more builds, and the last snapshot is let go. */
  private stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.latest = undefined;
  }
}
