import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { RedisClientType } from '@redis/client';

/**
 * A Lua script read once from `scripts/`, run by its SHA1 with EVALSHA and
 * sent whole only when Redis answers NOSCRIPT (after a restart or SCRIPT FLUSH).
 * The file name ends in the script's key count: `requeue-2.lua`. A script
 * that carries task records starts with `records.lua`, the one place that
 * writes them; a claim script starts with `peek-flags.lua`.
 */
export class LuaScript {
  readonly source: string;
  readonly sha: string;
  readonly keyCount: number;

  constructor(
    readonly name: string,
    includes: readonly string[] = [],
  ) {
    const read = (file: string) => readFileSync(new URL(`./scripts/${file}.lua`, import.meta.url), 'utf8');
    this.source = [...includes.map(read), read(name)].join('\n');
    this.sha = createHash('sha1').update(this.source).digest('hex');
    this.keyCount = Number(name.slice(name.lastIndexOf('-') + 1));
  }

  run(client: RedisClientType, keys: string[], args: Array<string | number> = []): Promise<unknown> {
    if (keys.length !== this.keyCount) return Promise.reject(new Error(`script ${this.name} takes ${this.keyCount} keys, got ${keys.length}`));
    const options = { keys, arguments: args.map(String) };
    // A plain promise chain rather than an async function: workers run a script per task.
    return client.evalSha(this.sha, options).catch((error: Error) => {
      if (!String(error.message).startsWith('NOSCRIPT')) throw error;
      return client.eval(this.source, options);
    });
  }
}

export const scripts = {
  claimMany: new LuaScript('claim-many-3', ['peek-flags']),
  requeue: new LuaScript('requeue-3'),
  ack: new LuaScript('ack-3', ['records']),
  retryAck: new LuaScript('retry-ack-5', ['records']),
  release: new LuaScript('release-3'),
  enqueueDue: new LuaScript('enqueue-due-2'),
  readSchedule: new LuaScript('read-schedule-1'),
  deleteIfEqual: new LuaScript('delete-if-equal-3'),
  popData: new LuaScript('pop-data-3'),
  peekData: new LuaScript('peek-data-2'),
  hasData: new LuaScript('has-data-2'),
  putResult: new LuaScript('put-result-7', ['records']),
  putIfEmpty: new LuaScript('put-if-empty-2'),
  putIfGreater: new LuaScript('put-if-greater-1'),
  renewLeases: new LuaScript('renew-leases-1'),
  expiredLeases: new LuaScript('expired-leases-1'),
  adoptClaims: new LuaScript('adopt-claims-7'),
  priorityEnqueue: new LuaScript('priority-enqueue-3'),
  priorityClaim: new LuaScript('priority-claim-3', ['peek-flags']),
  priorityRequeue: new LuaScript('priority-requeue-3'),
  priorityDepths: new LuaScript('priority-depths-1'),
  priorityEnqueueDue: new LuaScript('priority-enqueue-due-4'),
  writeRecords: new LuaScript('write-records-1', ['records']),
};
