import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigurationError, HueyError } from '../errors.js';
import type { Huey } from '../huey.js';
import { ACTIONS, UNTARGETED } from './actions.js';
import { prometheusText } from './metrics.js';
import { PAGE } from './page.js';
import { takeSnapshot, type Snapshot } from './snapshot.js';

export interface DashboardOptions {
  /** 0 picks a free port. @defaultValue 8080 */
  port?: number;
  /** Bound to this address; anything but loopback needs a `token`. @defaultValue '127.0.0.1' */
  host?: string;
  /** When set, every request must carry it (`?token=` or `Authorization: Bearer`). */
  token?: string;
  /** How often open pages get a fresh snapshot, in ms. @defaultValue 1000 */
  intervalMs?: number;
}

export interface Dashboard {
  /** The page's address, with the token when there is one. */
  readonly url: string;
  close(): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/**
 * Serve the dashboard: the page, a server-sent event stream of snapshots,
 * the actions it confirms, and Prometheus metrics at /metrics. Every action
 * is logged through the Huey's logger.
 */
export async function startDashboard(huey: Huey, options: DashboardOptions = {}): Promise<Dashboard> {
  const host = options.host ?? '127.0.0.1';
  const token = options.token;
  if (!LOOPBACK.has(host) && !token) throw new ConfigurationError(`the dashboard serves ${host} only with a token: give --token`);
  const intervalMs = options.intervalMs ?? 1000;
  const streams = new Set<ServerResponse>();
  let timer: NodeJS.Timeout | undefined;

  const allowed = (request: IncomingMessage, url: URL): boolean => {
    // Without a token, only requests addressed to this machine by name: a web page whose own
    // domain was pointed at 127.0.0.1 (DNS rebinding) gets no answer.
    if (!token) return LOOPBACK.has(hostOf(request.headers.host)) || hostOf(request.headers.host) === host;
    const given = url.searchParams.get('token') ?? /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1] ?? '';
    const [a, b] = [Buffer.from(given), Buffer.from(token)];
    return a.length === b.length && timingSafeEqual(a, b);
  };

  const broadcast = async () => {
    let data: string;
    try {
      data = JSON.stringify(await takeSnapshot(huey));
    } catch (error) {
      data = JSON.stringify({ error: error instanceof Error ? error.message : String(error) });
    }
    for (const stream of streams) stream.write(`data: ${data}\n\n`);
  };

  const server = createServer((request, response) => {
    void handle(request, response).catch((error: unknown) => {
      huey.logger.error(`dashboard: ${request.method} ${request.url} failed: ${error instanceof Error ? error.message : String(error)}`);
      // A refused action (no such task, not periodic) is the caller's to fix; anything else is ours.
      if (!response.headersSent) send(response, error instanceof HueyError ? 400 : 500, { error: error instanceof Error ? error.message : String(error) });
      else response.end();
    });
  });

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://dashboard');
    if (!allowed(request, url)) return send(response, 401, { error: 'this dashboard needs its token' });
    const route = `${request.method} ${url.pathname}`;
    switch (route) {
      case 'GET /':
        response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
        return void response.end(PAGE);
      case 'GET /events':
        response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
        streams.add(response);
        request.on('close', () => streams.delete(response));
        timer ??= setInterval(() => void (streams.size > 0 && broadcast()), intervalMs);
        return void (await broadcast());
      case 'GET /api/snapshot':
        return send(response, 200, await takeSnapshot(huey));
      case 'GET /metrics': {
        const { contentType, text } = await prometheusText(await takeSnapshot(huey));
        response.writeHead(200, { 'content-type': contentType });
        return void response.end(text);
      }
      case 'POST /api/action': {
        // JSON only: a cross-site form or no-cors fetch cannot send it without a preflight, which gets no CORS answer.
        if (!/^application\/json\b/.test(request.headers['content-type'] ?? '')) return send(response, 415, { error: 'send the action as application/json' });
        const text = await readBody(request);
        if (text === undefined) return send(response, 413, { error: 'an action is under 64 KiB' });
        const body = parseAction(text);
        if (!body) return send(response, 400, { error: 'the action is not a JSON object' });
        const action = ACTIONS[body.action ?? ''];
        if (!action || (!body.target && !UNTARGETED.has(body.action!))) {
          return send(response, 400, { error: `give an action (${Object.keys(ACTIONS).join(', ')}) and its target` });
        }
        const done = await action(huey, body.target ?? '');
        huey.logger.info(`dashboard: ${done}`);
        await broadcast();
        return send(response, 200, { ok: true, message: done });
      }
      default:
        return send(response, 404, { error: `no ${route} here` });
    }
  }

  server.listen(options.port ?? 8080, host);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shown}:${port}/${token ? `?token=${encodeURIComponent(token)}` : ''}`,
    close: async () => {
      clearInterval(timer);
      for (const stream of streams) stream.end();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The host name of a Host header, without the port or IPv6 brackets. */
function hostOf(header: string | undefined): string {
  const value = header ?? '';
  const bracketed = /^\[([^\]]+)\]/.exec(value);
  return bracketed ? bracketed[1]! : value.replace(/:\d+$/, '');
}

function send(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(JSON.stringify(body));
}

/** The request's body, or undefined past 64 KiB (an action is a few bytes). */
async function readBody(request: IncomingMessage): Promise<string | undefined> {
  let body = '';
  for await (const chunk of request) {
    body += String(chunk);
    if (body.length > 64 * 1024) return undefined;
  }
  return body;
}

function parseAction(text: string): { action?: string; target?: string } | undefined {
  try {
    const body: unknown = JSON.parse(text);
    return body !== null && typeof body === 'object' && !Array.isArray(body) ? (body as { action?: string; target?: string }) : undefined;
  } catch {
    return undefined;
  }
}

export type { Snapshot };
