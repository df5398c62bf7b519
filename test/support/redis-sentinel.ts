import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ask, freePort, startRedis, type TestRedis } from './redis-server.js';

/** A master, one replica and three sentinels watching them as `mymaster`, all of the test's own. */
export interface TestSentinels {
  readonly name: string;
  readonly master: TestRedis;
  readonly replica: TestRedis;
  readonly sentinelPorts: number[];
  readonly rootNodes: Array<{ host: string; port: number }>;
  /** The master's port as the first sentinel that answers names it. */
  masterPort(): Promise<number | null>;
  close(): Promise<void>;
}

/** Poll `check` until it returns something truthy, or fail with `what` after `ms`. */
export async function until<T>(what: string, check: () => Promise<T | undefined | null | false>, ms = 60_000, every = 100): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, every));
  }
}


async function startSentinel(masterPort: number, name: string): Promise<{ port: number; stop: () => Promise<void> }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'huey-sentinel-'));
  const conf = join(dir, 'sentinel.conf');
  writeFileSync(
    conf,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor ${name} 127.0.0.1 ${masterPort} 2`,
      `sentinel down-after-milliseconds ${name} 1000`,
      `sentinel failover-timeout ${name} 5000`,
      `sentinel parallel-syncs ${name} 1`,
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn('redis-server', [conf, '--sentinel'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = once(child, 'exit');
  await until(`sentinel on ${port}`, () => ask(port, (c) => c.sendCommand(['PING'])).then((r) => String(r) === 'PONG'), 20_000);
  return {
    port,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function startSentinels(options: { masterArgs?: string[] } = {}): Promise<TestSentinels> {
  const name = 'mymaster';
  const master = await startRedis({ args: options.masterArgs });
  const replica = await startRedis({ args: ['--replicaof', '127.0.0.1', String(master.port)] });
  const sentinels: Array<{ port: number; stop: () => Promise<void> }> = [];
  const close = async () => {
    await Promise.all(sentinels.map((s) => s.stop()));
    await Promise.all([master.close(), replica.close()]);
  };
  try {
    await until('the replica to sync', () => ask(replica.port, (c) => c.info('replication')).then((info) => info.includes('master_link_status:up')), 30_000);
    for (let i = 0; i < 3; i++) sentinels.push(await startSentinel(master.port, name));
    // A failover needs every sentinel to know the replica and a quorum of the others.
    await until(
      'the sentinels to find the replica and each other',
      async () => {
        for (const { port } of sentinels) {
          const [replicas, others] = await ask(port, async (c) => [
            (await c.sendCommand(['SENTINEL', 'REPLICAS', name])) as unknown[],
            (await c.sendCommand(['SENTINEL', 'SENTINELS', name])) as unknown[],
          ]);
          if (replicas.length < 1 || others.length < 2) return false;
        }
        return true;
      },
      60_000,
      200,
    );
  } catch (error) {
    await close();
    throw error;
  }
  const sentinelPorts = sentinels.map((s) => s.port);
  return {
    name,
    master,
    replica,
    sentinelPorts,
    rootNodes: sentinelPorts.map((port) => ({ host: '127.0.0.1', port })),
    async masterPort() {
      for (const port of sentinelPorts) {
        try {
          const reply = (await ask(port, (c) => c.sendCommand(['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name]))) as string[] | null;
          if (reply) return Number(reply[1]);
        } catch {
          // that sentinel is not answering: ask the next
        }
      }
      return null;
    },
    close,
  };
}
