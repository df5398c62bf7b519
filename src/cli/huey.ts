#!/usr/bin/env node
/*
 * huey COMMAND MODULE.EXPORT [args]: look at and steer the queue of the Huey
 * exported as EXPORT by MODULE, from a terminal or a script (--json).
 */
import { createInterface } from 'node:readline/promises';
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { DateTime } from 'luxon';
import { loadHuey, locateHuey, ModuleLoadError } from '../consumer/load-module.js';
import { ConsoleLog } from '../consumer/log.js';
import { ACTIONS } from '../dashboard/actions.js';
import { escapeControls, isCorrupt, readPending, readScheduled, type CorruptItem } from '../dashboard/read-items.js';
import { startDashboard } from '../dashboard/server.js';
import { readDeadLetters, takeSnapshot } from '../dashboard/snapshot.js';
import { HueyError } from '../errors.js';
import type { Huey } from '../huey.js';
import type { Message } from '../message.js';
import { migrateQueues } from '../migrate.js';

/** What a command gives back: printed as JSON with --json, else as the text. */
interface Output {
  data: unknown;
  text: string;
  /** Exit code; 0 unless said. */
  code?: number;
}

type Command = (huey: Huey, argv: Record<string, unknown>) => Promise<Output>;

// What the queue holds is anyone's text: no escape sequence of it reaches the terminal.
const describeMessage = (m: Message | CorruptItem): string =>
  escapeControls(
    isCorrupt(m)
      ? `(corrupt: ${m.reason})  ${m.preview}`
      : `${m.id}  ${m.name}(${m.args.map((arg) => JSON.stringify(arg)).join(', ')})${m.eta ? `  eta ${new Date(m.eta).toISOString()}` : ''}${m.priority ? `  priority ${m.priority}` : ''}`,
  );

/** Items that do not read back as task messages are listed as corrupt in their place, not a failure of the whole listing. */
const listing = (messages: Array<Message | CorruptItem>, none: string): Output => ({
  data: messages,
  text: messages.length === 0 ? none : messages.map(describeMessage).join('\n'),
});

const commands: Record<string, { describe: string; args?: string; options?: (y: Argv) => Argv; run: Command }> = {
  info: {
    describe: 'Counts of pending, scheduled, stored and dead-lettered tasks, the workers, and the registered tasks',
    run: async (huey) => {
      const [snapshot, stored] = await Promise.all([takeSnapshot(huey), huey.storage.resultStoreSize()]);
      const workers = snapshot.workers.map((w) => ({
        id: w.id,
        host: w.host,
        pid: w.pid,
        slots: w.concurrency,
        running: w.running.length,
        heartbeat: new Date(w.at).toISOString(),
        silent: w.silent,
      }));
      const data = {
        name: huey.name,
        storage: huey.storage.kind,
        pending: snapshot.pending,
        scheduled: snapshot.scheduledCount,
        stored,
        deadLetters: snapshot.deadLetters,
        paused: snapshot.paused,
        queues: snapshot.queues,
        workers,
        tasks: huey.taskNames.sort(),
      };
      const text = [
        `huey "${huey.name}" on ${huey.storage.kind}`,
        `pending: ${data.pending}`,
        `scheduled: ${data.scheduled}`,
        `results, flags and locks stored: ${stored}`,
        `dead letters: ${data.deadLetters}`,
        ...(snapshot.queues.length > 1 ? [`queues: ${snapshot.queues.map((q) => `${q.name} (${q.pending} pending${q.paused ? ', paused' : ''})`).join(', ')}`] : []),
        ...(data.paused ? ['PAUSED: workers start no new tasks (huey resume)'] : []),
        `workers: ${workers.length === 0 ? 'none reporting' : ''}`,
        ...workers.map((w) => `  ${w.id} on ${w.host} (pid ${w.pid}): ${w.running}/${w.slots} running, heartbeat ${w.heartbeat}${w.silent ? ' (silent)' : ''}`),
        `tasks: ${data.tasks.join(', ') || 'none'}`,
      ].join('\n');
      return { data, text };
    },
  },
  dashboard: {
    describe: 'Serve the web dashboard (live queue, workers, results, actions) and Prometheus metrics at /metrics, until SIGINT/SIGTERM',
    options: (y) =>
      y
        .option('port', { alias: 'p', type: 'number', default: 8080, describe: 'Port (0: any free one)' })
        .option('host', { type: 'string', default: '127.0.0.1', describe: 'Address to bind; anything but loopback needs --token' })
        .option('token', { type: 'string', describe: 'Required on every request (?token=...)' })
        .option('max-clients', { type: 'number', default: 100, describe: 'Open pages served at once; more are refused (503)' }),
    run: async (huey, argv) => {
      huey.logger = new ConsoleLog({ level: 'info' });
      const token = argv.token as string | undefined;
      const dashboard = await startDashboard(huey, { port: argv.port as number, host: argv.host as string, token, maxClients: argv.maxClients as number });
      // Logs are kept and shared: they get the address, never the token.
      huey.logger.info(`dashboard for "${huey.name}" at ${dashboard.url}${token ? ' (add ?token= with the --token given)' : ''}`);
      await new Promise((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await dashboard.close();
      return { data: { stopped: true }, text: 'dashboard stopped' };
    },
  },
  queues: {
    describe: 'Every queue: pending, scheduled and dead-lettered tasks, workers serving it, runs, and whether it is paused',
    run: async (huey) => {
      const { queues } = await takeSnapshot(huey);
      const text = queues
        .map((q) =>
          [
            `${q.name}${q.shards > 1 ? ` (${q.shards} shards)` : ''}${q.paused ? '  PAUSED' : ''}`,
            `pending ${q.pending}`,
            `scheduled ${q.scheduled}`,
            `dead ${q.deadLetters}`,
            `workers ${q.workers}`,
            `complete ${q.runs.complete ?? 0}`,
            `failed ${q.runs.failed ?? 0}`,
          ].join('  '),
        )
        .join('\n');
      return { data: queues, text };
    },
  },
  migrate: {
    describe: 'Bring the storage\'s tables to this version (PostgreSQL), and move waiting and scheduled tasks to the queue (and shard) they belong on now: after giving tasks a queue, or changing a queue\'s shards. Consumers may keep running',
    options: (y) =>
      y
        .option('dry-run', { type: 'boolean', default: false, describe: 'Only count what would move' })
        .option('from-shards', { type: 'number', describe: 'After cutting a queue\'s shards: the count before, whose shards past the new count are read too' }),
    run: async (huey, argv) => {
      const dryRun = argv.dryRun as boolean;
      const fromShards = argv.fromShards as number | undefined;
      if (fromShards !== undefined && !(Number.isSafeInteger(fromShards) && fromShards >= 1 && fromShards <= 256)) throw new HueyError('--from-shards must be a whole number from 1 to 256');
      // The storage's own tables first (PostgreSQL), then the tasks that belong on other queues.
      const schema: string[] = [];
      let current = true;
      for (const { storage } of huey.queueSources()) {
        const step = await storage.migrateSchema?.(dryRun);
        if (!step) continue;
        schema.push(step.line);
        current &&= step.current;
      }
      // A dry run against tables not made yet has nothing to look at (and must not make them by looking).
      if (!current) return { data: { dryRun, schema }, text: [...schema, 'no tasks to move before the tables are made'].join('\n') };
      const migration = await migrateQueues(huey, { dryRun, fromShards });
      const lines = [
        ...Object.entries(migration.queued).map(([route, n]) => `${n} waiting task(s) ${route}`),
        ...Object.entries(migration.scheduled).map(([route, n]) => `${n} scheduled task(s) ${route}`),
      ];
      const verb = dryRun ? 'would move' : 'moved';
      const moves = lines.length === 0 ? `nothing to move (${migration.seen} task(s) looked at)` : `${verb}:\n${lines.map((line) => `  ${line}`).join('\n')}`;
      return { data: { dryRun, schema, ...migration }, text: [...schema, moves].join('\n') };
    },
  },
  pending: {
    describe: 'Tasks waiting to run, next first (queue by queue)',
    options: (y) => y.option('limit', { type: 'number', default: 100, describe: 'Show at most this many' }).option('queue', queueOption),
    run: async (huey, argv) => listing(await readPending(huey, argv.limit as number, knownQueue(huey, argv)), 'no pending tasks'),
  },
  scheduled: {
    describe: 'Tasks waiting for their time, soonest first (queue by queue)',
    options: (y) => y.option('limit', { type: 'number', default: 100, describe: 'Show at most this many' }).option('queue', queueOption),
    run: async (huey, argv) => listing(await readScheduled(huey, argv.limit as number, knownQueue(huey, argv)), 'no scheduled tasks'),
  },
  'dead-letters': {
    describe: 'Messages set aside because they could not run, newest first',
    options: (y) => y.option('limit', { type: 'number', default: 100, describe: 'Show at most this many' }).option('queue', queueOption),
    run: async (huey, argv) => {
      const letters = await readDeadLetters(huey, argv.limit as number, knownQueue(huey, argv));
      const text = letters.map((letter) => `${new Date(letter.at).toISOString()}  [${letter.queue}]  ${escapeControls(letter.reason)}\n  ${escapeControls(letter.data)}`).join('\n');
      // For scripts, the message as a JSON value rather than a string to parse again; what is not JSON stays text.
      const data = letters.map((letter) => ({ at: new Date(letter.at).toISOString(), queue: letter.queue, reason: letter.reason, ...asJson(letter.data) }));
      return { data, text: text || 'no dead letters' };
    },
  },
  result: {
    describe: "A task's stored result (kept, not consumed); exit code 2 while there is none",
    args: '<id>',
    run: async (huey, argv) => {
      const id = String(argv.id);
      const outcome = await huey.readResult(id, true);
      if (outcome === undefined) return { data: null, text: `no result stored for ${id}`, code: 2 };
      if ('error' in outcome) return { data: outcome, text: `failed: ${outcome.error.name}: ${outcome.error.message}`, code: 1 };
      return { data: outcome, text: JSON.stringify(outcome.value, null, 2) };
    },
  },
  status: {
    describe: "A task's record: its state, times, worker, error, progress and log; exit code 1 for an id with no record",
    args: '<id>',
    run: async (huey, argv) => {
      const id = String(argv.id);
      const status = await huey.status(id);
      if (!status) return { data: null, text: `no record of task ${id} (never enqueued here, or its record lapsed)`, code: 1 };
      const at = (date: Date | null) => (date ? date.toISOString() : '–');
      const lines = [
        `${escapeControls(status.id)}  ${escapeControls(status.name)}  ${status.state}  (queue ${escapeControls(status.queue)})`,
        `created ${at(status.created)}  enqueued ${at(status.enqueued)}  started ${at(status.started)}  ended ${at(status.ended)}`,
        ...(status.eta ? [`due ${at(status.eta)}`] : []),
        ...(status.worker ? [`worker ${escapeControls(status.worker)}`] : []),
        ...(status.retries !== null ? [`retries left ${status.retries}`] : []),
        ...(status.error ? [`error ${escapeControls(status.error.name)}: ${escapeControls(status.error.message)}`] : []),
        ...(status.progress !== undefined ? [`progress ${escapeControls(JSON.stringify(status.progress))}`] : []),
        ...(status.log.length > 0 ? ['log:', ...status.log.map((line) => `  ${escapeControls(line)}`)] : []),
      ];
      return { data: status, text: lines.join('\n') };
    },
  },
  failed: {
    describe: 'Tasks that failed for good, the latest first, with their error, while their records are kept',
    options: (y) =>
      y
        .option('limit', { type: 'number', default: 100, describe: 'Show at most this many' })
        .option('queue', queueOption)
        .option('task', { type: 'string', describe: 'Only this task' }),
    run: async (huey, argv) => {
      const statuses = await huey.failed({ limit: argv.limit as number, queue: knownQueue(huey, argv), task: argv.task as string | undefined });
      const text = statuses
        .map((s) => `${s.ended ? s.ended.toISOString() : '–'}  ${escapeControls(s.id)}  ${escapeControls(s.name)}  [${escapeControls(s.queue)}]  ${s.error ? escapeControls(`${s.error.name}: ${s.error.message}`) : ''}`)
        .join('\n');
      return { data: statuses, text: text || 'no failed tasks' };
    },
  },
  requeue: {
    describe: 'Run again tasks that failed for good, from their records: one by id, or --all (of one --task, one --queue)',
    args: '[id]',
    options: (y) =>
      y
        .option('all', { type: 'boolean', default: false, describe: 'Every failed task (see huey failed)' })
        .option('queue', queueOption)
        .option('task', { type: 'string', describe: 'Only this task' }),
    run: async (huey, argv) => {
      const queue = knownQueue(huey, argv);
      if (argv.id !== undefined && argv.all) throw new HueyError('give an id or --all, not both');
      if (argv.id === undefined && !argv.all) throw new HueyError('give the id of a failed task, or --all');
      if (argv.id !== undefined) {
        const id = String(argv.id);
        const done = await huey.requeue(id, { queue });
        return done
          ? { data: { requeued: [id] }, text: `requeued ${id}` }
          : { data: { requeued: [] }, text: `no failed task ${id} with its message kept (see huey failed)`, code: 2 };
      }
      const requeued: string[] = [];
      for (const status of await huey.failed({ limit: 10_000, queue, task: argv.task as string | undefined })) {
        if (await huey.requeue(status.id, { queue: status.queue })) requeued.push(status.id);
      }
      return { data: { requeued }, text: `requeued ${requeued.length} failed task(s)` };
    },
  },
  revoke: {
    describe: 'Skip the task with this id when a worker picks it up',
    args: '<id>',
    options: (y) =>
      y
        .option('once', { type: 'boolean', default: false, describe: 'Only its next run' })
        .option('until', { type: 'string', describe: 'Only until this ISO time' })
        .option('force', { type: 'boolean', default: false, describe: 'Revoke an id the queue does not hold (a call yet to be enqueued with it)' }),
    run: async (huey, argv) => {
      const id = String(argv.id);
      const until = argv.until === undefined ? undefined : DateTime.fromISO(String(argv.until));
      if (until && !until.isValid) throw new HueyError(`--until ${String(argv.until)} is not an ISO time`);
      // A mistyped id would otherwise be "revoked" and the real task run anyway.
      if (!argv.force && !(await isKnownTask(huey, id))) {
        const text = `no task ${id} is pending, scheduled, claimed or running, and none has a stored result: nothing revoked (--force revokes it anyway)`;
        return { data: { revoked: null, unknown: id }, text, code: 2 };
      }
      await huey.revokeById(id, { revokeOnce: argv.once as boolean, revokeUntil: until });
      return { data: { revoked: id }, text: `revoked ${id}` };
    },
  },
  restore: {
    describe: 'Undo the revocation of the task with this id',
    args: '<id>',
    run: async (huey, argv) => {
      const id = String(argv.id);
      const restored = await huey.restoreById(id);
      return { data: { restored: restored ? id : null }, text: restored ? `restored ${id}` : `${id} was not revoked`, code: restored ? 0 : 2 };
    },
  },
  retry: {
    describe: 'Run again a dead-lettered task, or one that failed for good among the latest runs',
    args: '<id>',
    run: async (huey, argv) => {
      const done = await ACTIONS.retry!(huey, String(argv.id));
      return { data: { retried: String(argv.id) }, text: done };
    },
  },
  pause: {
    describe: 'Stop workers from starting new tasks (of one queue with --queue; running ones finish); they look once a second',
    options: (y) => y.option('queue', queueOption),
    run: async (huey, argv) => {
      const queue = knownQueue(huey, argv);
      const text = queue === undefined ? await ACTIONS.pause!(huey, '') : await ACTIONS['pause-queue']!(huey, queue);
      return { data: { paused: true, queue: queue ?? null }, text };
    },
  },
  resume: {
    describe: 'Let paused workers start tasks again (of one queue with --queue)',
    options: (y) => y.option('queue', queueOption),
    run: async (huey, argv) => {
      const queue = knownQueue(huey, argv);
      const text = queue === undefined ? await ACTIONS.resume!(huey, '') : await ACTIONS['resume-queue']!(huey, queue);
      return { data: { paused: false, queue: queue ?? null }, text };
    },
  },
  'flush-locks': {
    describe: 'Clear the named task locks, or every lock',
    args: '[names..]',
    run: async (huey, argv) => {
      const flushed = await huey.flushLocks(...((argv.names as string[] | undefined) ?? []));
      return { data: { flushed }, text: flushed.length ? `flushed: ${flushed.join(', ')}` : 'no lock was held' };
    },
  },
  purge: {
    describe: 'Drop every pending task, of every queue or of one with --queue (asks first, unless --yes)',
    options: (y) => y.option('yes', { alias: 'y', type: 'boolean', default: false, describe: 'Do not ask' }).option('queue', queueOption),
    run: async (huey, argv) => {
      const queue = knownQueue(huey, argv);
      let pending = 0;
      for (const { storage } of huey.queueSources(queue)) pending += await storage.queueSize();
      const where = queue === undefined ? `"${huey.name}"` : `queue ${queue} of "${huey.name}"`;
      if (!argv.yes && !(await confirm(`drop ${pending} pending task(s) of ${where}?`))) {
        return { data: { purged: 0 }, text: 'nothing dropped', code: 1 };
      }
      for (const { storage } of huey.queueSources(queue)) await storage.flushQueue();
      return { data: { purged: pending }, text: `dropped ${pending} pending task(s)` };
    },
  },
};

/** A stored text as a JSON value (`message`), or as the text itself (`data`) when it is not JSON. */
function asJson(data: string): { message: unknown } | { data: string } {
  try {
    return { message: JSON.parse(data) as unknown };
  } catch {
    return { data };
  }
}

/**
 * Whether the storage holds task `id` anywhere: a stored result, a worker
 * running or holding it, the queue or the schedule. Reads every item (an
 * admin command, run by hand), matching the id's text before parsing.
 */
async function isKnownTask(huey: Huey, id: string): Promise<boolean> {
  for (const storage of huey.resultStorages(id)) if (await storage.hasDataForKey(id)) return true;
  const quoted = JSON.stringify(id);
  const holds = (data: string) => {
    if (!data.includes(quoted)) return false;
    try {
      return huey.deserializeMessage(data).id === id;
    } catch {
      return false;
    }
  };
  const statuses = await huey.storage.statuses();
  if (Object.values(statuses).some((status) => status.includes(quoted))) return true;
  for (const { storage } of huey.queueSources()) {
    for (const workerId of Object.keys(statuses)) {
      if ((await storage.claimed(workerId)).some((claim) => holds(claim.data))) return true;
    }
    if ((await storage.enqueuedItems()).some(holds) || (await storage.scheduledItems()).some(holds)) return true;
  }
  return false;
}

const queueOption = { alias: 'Q', type: 'string', describe: 'Only this queue' } as const;

/** The --queue given, refused unless the instance knows it (a mistyped name would show nothing, or pause nothing). */
function knownQueue(huey: Huey, argv: Record<string, unknown>): string | undefined {
  const queue = argv.queue as string | undefined;
  if (queue !== undefined && !huey.queueNames.includes(queue)) throw new HueyError(`no queue ${queue}: "${huey.name}" knows ${huey.queueNames.join(', ')}`);
  return queue;
}

/** Ask on the terminal; without one, the answer is no (scripts pass --yes). */
async function confirm(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) throw new HueyError('not asking without a terminal: pass --yes');
  const readline = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await readline.question(`${question} [y/N] `)).trim());
  } finally {
    readline.close();
  }
}

async function main(): Promise<number> {
  let chosen: { run: Command; argv: Record<string, unknown> } | undefined;
  let parser = yargs(hideBin(process.argv))
    .scriptName('huey')
    .usage('$0 COMMAND MODULE.EXPORT [args]\n\nLook at and steer the queue of the Huey exported as EXPORT by MODULE (main.huey).')
    .option('json', { type: 'boolean', default: false, describe: 'Print JSON, for scripts' })
    .demandCommand(1, 'name a command')
    .strict()
    .help()
    .alias('h', 'help')
    .version(false);
  for (const [name, command] of Object.entries(commands)) {
    parser = parser.command(
      `${name} <huey>${command.args ? ` ${command.args}` : ''}`,
      command.describe,
      (y) => (command.options ? command.options(y) : y).positional('huey', { type: 'string', describe: 'MODULE.EXPORT of the Huey instance' }),
      (argv) => void (chosen = { run: command.run, argv }),
    );
  }
  const argv = await parser.parseAsync();
  if (!chosen) return 1;
  const huey = await loadHuey(locateHuey(String(chosen.argv.huey)));
  try {
    const output = await chosen.run(huey, chosen.argv);
    process.stdout.write(`${argv.json ? JSON.stringify(output.data) : output.text}\n`);
    return output.code ?? 0;
  } finally {
    await huey.close();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    const text = error instanceof ModuleLoadError || error instanceof HueyError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error);
    process.stderr.write(`huey: ${text}\n`);
    process.exit(1);
  },
);
