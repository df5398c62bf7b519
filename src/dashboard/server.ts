import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigurationError, HueyError } from '../errors.js';
import type { Huey } from '../huey.js';
import { ACTIONS, UNTARGETED } from './actions.js';
import { prometheusText } from './metrics.js';
import { fitSnapshot } from './fit.js';
import { pageHtml, SECURITY_HEADERS } from './page.js';
import { takeSnapshot, type Snapshot } from './snapshot.js';
import { SnapshotStream } from './stream.js';

export interface DashboardOptions {
  /** 0 picks a free port. @defaultValue 8080 */
  port?: number;
  /** Bound to this address; anything but loopback needs a `token`. @defaultValue '127.0.0.1' */
  host?: string;
  /** When set, every request must carry it (`?token=` or `Authorization: Bearer`). */
  token?: string;
  /** How often open pages get a fresh snapshot, in ms. @defaultValue 1000 */
  intervalMs?: number;
  /** Open pages (event streams) served at once; one more is answered 503. @defaultValue 100 */
  maxClients?: number;
  /** The most a snapshot sent to pages may weigh, in bytes: longer lists are cut (see fit.ts). @defaultValue 256 KiB */
  maxSnapshotBytes?: number;
}

export interface Dashboard {
  /** The page's address, without the token: it is shown in logs, and the token must not be (add `?token=`). */
  readonly url: string;
  /** Pages listening to the event stream now. */
  readonly clients: number;
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
  const maxSnapshotBytes = options.maxSnapshotBytes ?? 256 * 1024;
  const snapshotJson = async (): Promise<string> => {
    try {
      return fitSnapshot(await takeSnapshot(huey), maxSnapshotBytes);
    } catch (error) {
      return JSON.stringify({ error: error instanceof Error ? error.message : String(error) });
    }
  };
  const stream = new SnapshotStream(snapshotJson, options.intervalMs ?? 1000, options.maxClients ?? 100);

  const allowed = (request: IncomingMessage, url: URL): boolean => {
    // Without a token, only requests addressed to this machine by name: a web page whose own
    // domain was pointed at 127.0.0.1 (DNS rebinding) gets no answer.
    if (!token) return LOOPBACK.has(hostOf(request.headers.host)) || hostOf(request.headers.host) === host;
    const given = url.searchParams.get('token') ?? /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1] ?? '';
    const [a, b] = [Buffer.from(given), Buffer.from(token)];
    return a.length === b.length && timingSafeEqual(a, b);
  };

  const server = createServer((request, response) => {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) response.setHeader(name, value);
    void handle(request, response).catch((error: unknown) => {
      huey.logger.error(`dashboard: ${request.method} ${redact(request.url ?? '')} failed: ${error instanceof Error ? error.message : String(error)}`);
      // A refused action (no such task, not periodic) is the caller's to fix; anything else is ours.
      if (!response.headersSent) send(response, error instanceof HueyError ? 400 : 500, { error: error instanceof Error ? error.message : String(error) });
      else response.end();
    });
  });

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://dashboard');
    // Browsers ask for it on their own, without the token: nothing to hide, and no 404 in their console.
    if (request.method === 'GET' && url.pathname === '/favicon.ico') return void response.writeHead(204).end();
    if (!allowed(request, url)) return send(response, 401, { error: 'this dashboard needs its token' });
    const route = `${request.method} ${url.pathname}`;
    switch (route) {
      case 'GET /':
        // With the latest snapshot inside: the page is whole before its first event.
        response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
        return void response.end(pageHtml((await stream.current()).json));
      case 'GET /events':
        if (!stream.add(response)) return send(response, 503, { error: 'too many open dashboard pages: close one, or raise maxClients' });
        return;
      case 'GET /api/snapshot':
        response.writeHead(200, { 'content-type': 'application/json' });
        return void response.end(fitSnapshot(await takeSnapshot(huey), maxSnapshotBytes));
      case 'GET /api/status': {
        // A task's record by id: the search box. The id is only looked up, never shown back as HTML.
        const id = url.searchParams.get('id') ?? '';
        if (id === '' || id.length > 512) return send(response, 400, { error: 'give a task id: ?id=...' });
        if (!huey.records) return send(response, 404, { error: 'task records are off for this instance (records: true keeps them)' });
        const status = await huey.status(id);
        if (!status) return send(response, 404, { error: `no record of task ${id} (never enqueued here, or its record lapsed)` });
        return send(response, 200, { status });
      }
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
        await stream.refresh();
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
    url: `http://${shown}:${port}/`,
    get clients() {
      return stream.size;
    },
    close: async () => {
      stream.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A request's path and query for the log, with the token's value left out. */
function redact(path: string): string {
  return path.replace(/([?&]token=)[^&#]*/gi, '$1<redacted>');
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
