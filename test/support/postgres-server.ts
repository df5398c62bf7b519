import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort } from './redis-server.js';

/** A PostgreSQL server of the test's own: a fresh cluster in a scratch directory, on a free port. */
export interface TestPostgres {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust authentication). */
  readonly url: string;
  readonly port: number;
  /** Stop the server (an immediate, crash-like stop when `crash`) and wait for it to exit. */
  stop(crash?: boolean): Promise<void>;
  /** Start it again on the same port, with its data. */
  restart(): Promise<void>;
  /** Stop it for good and remove its directory. */
  close(): Promise<void>;
}

/** The newest installed PostgreSQL's programs (Debian keeps them in /usr/lib/postgresql/<version>/bin). */
function binaries(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))) : [];
  if (versions.length === 0) throw new Error('no PostgreSQL server programs in /usr/lib/postgresql/*/bin: install the postgresql package (scripts/test-deps.sh does)');
  return join(root, versions.sort((a, b) => Number(b) - Number(a))[0]!, 'bin');
}

/**
 * PostgreSQL refuses to run as root: as root, the cluster is made and run
 * as the `postgres` user, who then owns the directory.
 */
function runAs(): { uid?: number; gid?: number } {
  if (userInfo().uid !== 0) return {};
  const id = (flag: string) => Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim());
  const [uid, gid] = [id('-u'), id('-g')];
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error('running as root, and there is no postgres user to run PostgreSQL as');
  return { uid, gid };
}

export async function startPostgres(): Promise<TestPostgres> {
  const bin = binaries();
  const user = runAs();
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'huey-postgres-'));
  const data = join(dir, 'data');
  if (user.uid !== undefined) chownSync(dir, user.uid, user.gid!);
  const init = spawnSync(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync'], { ...user, encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`initdb failed:\n${init.stdout}\n${init.stderr}`);
  let child: ChildProcess;

  const start = async () => {
    // Durability off: a test server is thrown away, and this keeps it fast on a small machine.
    const settings = ['listen_addresses=127.0.0.1', 'fsync=off', 'synchronous_commit=off', 'full_page_writes=off', 'max_connections=200', `unix_socket_directories=${dir}`];
    child = spawn(join(bin, 'postgres'), ['-D', data, '-p', String(port), ...settings.flatMap((setting) => ['-c', setting])], { ...user, stdio: ['ignore', 'ignore', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      let output = '';
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('database system is ready to accept connections')) {
          child.stderr!.off('data', onData);
          child.stderr!.resume();
          resolve();
        }
      };
      child.stderr!.on('data', onData);
      child.once('exit', (code) => reject(new Error(`postgres exited with ${code}:\n${output}`)));
      child.once('error', reject);
    });
  };

  const stop = async (crash = false) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    // SIGQUIT: immediate shutdown, as a crash; SIGINT: fast shutdown, sessions cut off.
    child.kill(crash ? 'SIGQUIT' : 'SIGINT');
    await exited;
  };

  await start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    stop,
    restart: start,
    close: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
