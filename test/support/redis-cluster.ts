import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ask, freePort } from './redis-server.js';
import { until } from './redis-sentinel.js';

/** One redis-server in cluster mode, of the test's own. */
export interface ClusterNode {
  readonly port: number;
  /** Stop it (SIGKILL when `crash`) and wait for it to exit. */
  stop(crash?: boolean): Promise<void>;
}

/** Six cluster nodes, three masters with a replica each, all of the test's own. */
export interface TestCluster {
  readonly nodes: ClusterNode[];
  readonly rootNodes: Array<{ url: string }>;
  /** The port of the master that serves `slot`, as the first live node that answers says. */
  masterOfSlot(slot: number): Promise<number | null>;
  /** The slot a key hashes to, as Redis computes it. */
  keySlot(key: string): Promise<number>;
  close(): Promise<void>;
}


async function startNode(dir: string): Promise<ClusterNode> {
  const port = await freePort();
  const child: ChildProcess = spawn(
    'redis-server',
    [
      '--port', String(port),
      '--bind', '127.0.0.1',
      '--dir', dir,
      '--cluster-enabled', 'yes',
      '--cluster-config-file', `nodes-${port}.conf`,
      '--cluster-node-timeout', '1000',
      // A replica fails over however long ago it last heard from its master: on a loaded
      // test machine the last ping may be old, and the default would refuse the promotion.
      '--cluster-replica-validity-factor', '0',
      '--appendonly', 'no',
      '--save', '',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const exited = once(child, 'exit');
  await until(`cluster node on ${port}`, () => ask(port, (c) => c.sendCommand(['PING'])).then((r) => String(r) === 'PONG'), 20_000, 50);
  return {
    port,
    async stop(crash = false) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(crash ? 'SIGKILL' : 'SIGTERM');
      await exited;
    },
  };
}

export async function startCluster(): Promise<TestCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'huey-cluster-'));
  const nodes: ClusterNode[] = [];
  const close = async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  const live = async () => {
    const ports: number[] = [];
    for (const node of nodes) {
      try {
        await ask(node.port, (c) => c.sendCommand(['PING']));
        ports.push(node.port);
      } catch {
        // down
      }
    }
    return ports;
  };
  try {
    for (let i = 0; i < 6; i++) nodes.push(await startNode(dir));
    await promisify(execFile)(
      'redis-cli',
      ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '1', '--cluster-yes'],
      { timeout: 60_000 },
    );
    await until(
      'every node to report cluster_state:ok, and every replica to be in sync with its master',
      async () => {
        for (const node of nodes) {
          const info = String(await ask(node.port, (c) => c.sendCommand(['CLUSTER', 'INFO'])));
          if (!info.includes('cluster_state:ok')) return false;
          // A replica still in its first sync cannot take over when its master dies.
          const replication = String(await ask(node.port, (c) => c.sendCommand(['INFO', 'replication'])));
          if (replication.includes('role:slave') && !replication.includes('master_link_status:up')) return false;
        }
        return true;
      },
      60_000,
      100,
    );
  } catch (error) {
    await close();
    throw error;
  }
  return {
    nodes,
    rootNodes: nodes.map((n) => ({ url: `redis://127.0.0.1:${n.port}` })),
    async masterOfSlot(slot) {
      for (const port of await live()) {
        try {
          const ranges = (await ask(port, (c) => c.sendCommand(['CLUSTER', 'SLOTS']))) as Array<[number, number, [string, number, ...unknown[]], ...unknown[]]>;
          for (const [from, to, master] of ranges) if (slot >= Number(from) && slot <= Number(to)) return Number(master[1]);
          return null;
        } catch {
          // ask the next
        }
      }
      return null;
    },
    async keySlot(key) {
      const [port] = await live();
      return Number(await ask(port!, (c) => c.sendCommand(['CLUSTER', 'KEYSLOT', key])));
    },
    close,
  };
}
