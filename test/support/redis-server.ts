import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, type RedisClientType } from '@redis/client';

/** A redis-server of the test's own, on a free port, keeping nothing on disk. */
export interface TestRedis {
  readonly url: string;
  readonly port: number;
  /** Stop the server (SIGKILL when `crash`) and wait for it to exit. */
  stop(crash?: boolean): Promise<void>;
  /** Start it again on the same port. */
  restart(): Promise<void>;
  /** Stop it for good and remove its scratch directory. */
  close(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

export interface RedisServerOptions {
  /** Keep data across restarts with an append-only file synced on every write. */
  persistent?: boolean;
  /** More `redis-server` arguments: `['--maxmemory-policy', 'allkeys-lru']`. */
  args?: string[];
}

export async function startRedis(options: RedisServerOptions = {}): Promise<TestRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'huey-redis-'));
  let child: ChildProcess;

  const start = async () => {
    const persistence = options.persistent ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...persistence, '--dir', dir, ...(options.args ?? [])], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    // redis-server says "Ready to accept connections" once it listens.
    await new Promise<void>((resolve, reject) => {
      let output = '';
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) {
          child.stdout!.off('data', onData);
          child.stdout!.resume();
          resolve();
        }
      };
      child.stdout!.on('data', onData);
      child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}:\n${output}`)));
      child.once('error', reject);
    });
  };

  const stop = async (crash = false) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill(crash ? 'SIGKILL' : 'SIGTERM');
    await exited;
  };

  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop: async (crash) => {
      await stop(crash);
    },
    restart: start,
    close: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Run `run` on a short-lived connection to the server on `port`, without retries: for polling servers the tests start. */
export async function ask<T>(port: number, run: (client: RedisClientType) => Promise<T>): Promise<T> {
  const client = createClient({ socket: { host: '127.0.0.1', port, reconnectStrategy: false, connectTimeout: 2000 } }) as RedisClientType;
  client.on('error', () => {});
  await client.connect();
  try {
    return await run(client);
  } finally {
    client.destroy();
  }
}
