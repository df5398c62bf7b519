/*
 * The first module of a thread or process worker. It loads the user's module
 * itself (so the registry is filled in this thread or process), runs the
 * shared Worker loop until the consumer says stop, and reports back through
 * the thread port or the IPC channel.
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import type { Huey } from '../huey.js';
import type { Logger } from '../logger.js';
import type { Message } from '../message.js';
import type { WorkerCommand, WorkerReport, WorkerSetup } from './isolated-pool.js';
import { loadHuey, locateHuey } from './load-module.js';
import type { LogLevel } from './log.js';
import { runHooks } from './pool.js';
import { Worker } from './worker.js';

const inThread = !isMainThread;
const setup: WorkerSetup = inThread ? (workerData as WorkerSetup) : (JSON.parse(process.env.HUEY_WORKER_SETUP ?? 'null') as WorkerSetup);
if (!setup) throw new Error('worker-entry is started by the consumer, not by hand');

/**
 * Send a report to the consumer. A process worker outlives a consumer that
 * was killed: its channel is then closed, and a report would throw
 * ERR_IPC_CHANNEL_CLOSED, so log lines go to the inherited stderr instead
 * and the rest is dropped while the worker finishes what it holds.
 */
function report(message: WorkerReport): void {
  if (inThread) return parentPort!.postMessage(message);
  if (process.connected && process.send) {
    process.send(message, undefined, {}, (error) => {
      if (error && message.type === 'log') writeOrphanLine(message.level, message.message);
    });
  } else if (message.type === 'log') {
    writeOrphanLine(message.level, message.message);
  }
}

function writeOrphanLine(level: LogLevel, message: string): void {
  process.stderr.write(`${new Date().toISOString()} ${level.toUpperCase()} ${setup.workerId} (consumer gone): ${message}\n`, () => {});
}

function onCommand(listener: (command: WorkerCommand) => void): void {
  if (inThread) parentPort!.on('message', listener);
  else process.on('message', listener as (message: unknown) => void);
}

/**
 * Tells the consumer which runs are under way, as cheaply as that can be
 * exact enough. A run with a timeout is reported as it starts: the consumer
 * keeps that clock, since a task blocking this event loop cannot time itself
 * out. Any other run is reported only if it is still going after a turn of
 * the event loop, with every other such run in one message, and its end only
 * if its start was: a fast task costs no IPC at all. A worker that dies
 * before a start was reported has that run put back unstarted, counted
 * against the consumer's stall limit.
 */
class RunReports {
  private unreported = new Set<string>();
  private reported = new Set<string>();
  private finished: string[] = [];
  private flushing?: NodeJS.Immediate;

  started(message: Message): void {
    if (message.timeout) {
      this.reported.add(message.id);
      report({ type: 'started', runs: [{ taskId: message.id, timeout: message.timeout }] });
      return;
    }
    this.unreported.add(message.id);
    this.flushing ??= setImmediate(() => this.flush());
  }

  ended(message: Message): void {
    if (this.unreported.delete(message.id) || !this.reported.delete(message.id)) return;
    // A timed run's end goes at once too: the next run may block this event
    // loop, and the consumer's clock must not then kill the worker for a run that is over.
    if (message.timeout) return report({ type: 'finished', taskIds: [message.id] });
    this.finished.push(message.id);
    this.flushing ??= setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushing = undefined;
    // Ends first: a run that ended and a retry of it (the same id) that started in one turn are told in that order.
    if (this.finished.length > 0) {
      report({ type: 'finished', taskIds: this.finished });
      this.finished = [];
    }
    if (this.unreported.size > 0) {
      const runs = [...this.unreported].map((taskId) => ({ taskId, timeout: null }));
      for (const { taskId } of runs) this.reported.add(taskId);
      this.unreported.clear();
      report({ type: 'started', runs });
    }
  }
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Log lines go to the consumer, which writes them with the worker's name; filtered here to spare the channel. */
function forwardingLogger(level: LogLevel): Logger {
  const at = (lineLevel: LogLevel) => (message: string) => {
    if (RANK[lineLevel] >= RANK[level]) report({ type: 'log', level: lineLevel, message });
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

async function main(): Promise<void> {
  let worker: Worker | undefined;
  let stopRequested = false;
  onCommand((command) => {
    if (command.type !== 'stop') return;
    stopRequested = true;
    worker?.stop();
  });
  let huey: Huey | undefined;
  let orphaned = false;
  // A process worker whose consumer is gone (killed) stops as it would when
  // told to: it finishes its run and puts back what it claimed ahead. Nobody
  // renews its lease any more, so it does, or another consumer would take
  // over the run it is finishing.
  if (!inThread) {
    process.on('disconnect', () => {
      stopRequested = true;
      orphaned = true;
      worker?.stop();
      const renew = () => {
        for (const source of worker?.reader.sources ?? []) source.storage.renewLeases([setup.workerId], setup.leaseMs).catch(() => {});
      };
      renew();
      setInterval(renew, setup.leaseMs / 3).unref();
      // As long as a stop would have waited, and no longer: then the lease runs out and
      // another consumer settles what is left (a failed run for what had started).
      setTimeout(() => {
        writeOrphanLine('warn', `runs still going ${setup.graceMs / 1000}s after the consumer died: exiting, their claims go to whoever adopts them`);
        process.exit(1);
      }, setup.graceMs).unref();
    });
    // Its stdout and stderr are the consumer's: a closed pipe must not kill it mid-task.
    process.stdout.on('error', () => {});
    process.stderr.on('error', () => {});
    // Ctrl-C in a terminal signals the whole process group, and systemd's stop the whole
    // cgroup: the consumer alone decides when its workers stop (after the grace period), so
    // they ignore both and wait to be told, or for the consumer to go.
    process.on('SIGINT', () => {});
    process.on('SIGTERM', () => {});
  }

  huey = await loadHuey(locateHuey(setup.spec, setup.cwd));
  huey.logger = forwardingLogger(setup.logLevel);
  await huey.connect();
  await runHooks(huey.startupHooks, huey, 'startup');
  const runs = new RunReports();
  // The consumer adds the worker id to each forwarded line itself.
  worker = new Worker(huey, setup.workerId, {
    ...setup.options,
    logger: huey.logger,
    onStart: (message) => runs.started(message),
    onFinish: (message) => runs.ended(message),
  });
  huey.logger.info(`${inThread ? 'thread' : 'process'} worker started (pid ${process.pid})`);
  report({ type: 'ready' });
  if (!stopRequested) await worker.run();
  await runHooks(huey.shutdownHooks, huey, 'shutdown');
  if (orphaned) {
    // Nobody else will put back what this worker still holds (a storage error may have left
    // claims): it tries, and gives up its lease only once it holds nothing, or the lease runs
    // out and another consumer adopts them.
    try {
      for (const { storage } of worker.reader.sources) {
        await storage.requeue(setup.workerId);
        if ((await storage.claimed(setup.workerId)).length === 0) await storage.dropLeases([setup.workerId]);
      }
    } catch {
      // The storage is away: the lease runs out and the claims are adopted.
    }
  }
  await huey.close();
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    const failure: WorkerReport = { type: 'failed', error: error instanceof Error ? error.message : String(error) };
    // Exit only once the report has left, or the consumer would see a bare exit code.
    if (inThread) {
      parentPort!.postMessage(failure);
      setImmediate(() => process.exit(1));
    } else {
      if (process.connected && process.send) process.send(failure, undefined, {}, () => process.exit(1));
      else process.exit(1);
    }
  },
);
